import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";

const crons = cronJobs();
crons.interval("tidy", { minutes: 5 }, internal.notes.tidy, { keep: 10 });
crons.hourly("hourly tidy", { minuteUTC: 15 }, internal.notes.tidy, { keep: 1 });
crons.daily("daily tidy", { hourUTC: 3, minuteUTC: 30 }, internal.notes.tidy, { keep: 2 });
crons.weekly("weekly tidy", { dayOfWeek: "monday", hourUTC: 9, minuteUTC: 0 }, internal.notes.tidy, { keep: 3 });
crons.monthly("monthly tidy", { day: 1, hourUTC: 0, minuteUTC: 0 }, internal.notes.tidy, { keep: 4 });
crons.cron("expression tidy", "*/10 * * * *", internal.notes.tidy, { keep: 5 });
export default crons;
