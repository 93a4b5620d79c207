// The demo's seed data: `SEED_CENTERS` music centers of `SEED_STUDENTS_PER_CENTER` students each, the
// same on every machine, written only into a deployment that has no center yet. Run it once:
// `curl -X POST http://127.0.0.1:3210/api/mutation -H "Authorization: Convex $LIVEBASE_ADMIN_KEY" \
//   -H 'content-type: application/json' -d '{"path": "seed:demoData", "args": {}}'`.
import { internalMutation } from "./_generated/server";
import { SEED_CENTERS, SEED_STUDENTS_PER_CENTER } from "./lib/limits";

const CENTER_NAMES = [
  "Riverside Music School",
  "Northgate Piano Studio",
  "Harbor Conservatory",
  "Maple Street Music Center",
];
const FIRST_NAMES = [
  "Ada", "Ben", "Chloe", "Dev", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam", "Maya", "Noah",
  "Olga", "Pablo",
];
const LAST_NAMES = [
  "Alvarez", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski", "Lee",
];

/** The `index`th student of the `center`th center: 7 in 10 active, 2 paused, 1 graduated. */
function seedStudent(center: number, index: number) {
  const first = FIRST_NAMES[(index + center * 5) % FIRST_NAMES.length];
  // A stride prime to the list's length walks every last name before repeating a pair.
  const last = LAST_NAMES[(Math.floor(index / FIRST_NAMES.length) * 7 + center) % LAST_NAMES.length];
  const status = index % 10 < 7 ? "active" : index % 10 < 9 ? "paused" : "graduated";
  return { name: `${first} ${last}`, status } as const;
}

export const demoData = internalMutation({
  args: {},
  handler: async (ctx) => {
    const seeded = (await ctx.db.query("centers").first()) === null;
    if (seeded) {
      for (const [centerIndex, name] of CENTER_NAMES.slice(0, SEED_CENTERS).entries()) {
        const centerId = await ctx.db.insert("centers", { name });
        for (let index = 0; index < SEED_STUDENTS_PER_CENTER; index++) {
          await ctx.db.insert("students", { centerId, ...seedStudent(centerIndex, index) });
        }
      }
    }
    return {
      seeded,
      centers: seeded ? SEED_CENTERS : 0,
      students: seeded ? SEED_CENTERS * SEED_STUDENTS_PER_CENTER : 0,
    };
  },
});
