//! The demo's seed data: `SEED_CENTERS` music centers of `SEED_STUDENTS_PER_CENTER` students each, the
//! same on every machine, written only into a deployment that has no center yet.

use livebase_functions::{Function, FunctionError, Identity, Registry, RegistryError, Runtime, object_validator};
use livebase_query::Query;
use livebase_value::{Object, Value};

use crate::limits::{SEED_CENTERS, SEED_STUDENTS_PER_CENTER};
use crate::students::STUDENT_STATUSES;

const CENTER_NAMES: [&str; SEED_CENTERS] =
    ["Riverside Music School", "Northgate Piano Studio", "Harbor Conservatory", "Maple Street Music Center"];
const FIRST_NAMES: [&str; 16] = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kira", "Liam", "Maya", "Noah",
    "Olga", "Pablo",
];
const LAST_NAMES: [&str; 12] = [
    "Alvarez", "Brown", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen", "Kowalski", "Lee",
];

/// The `index`th student of the `center`th center: a name and a status (7 in 10 active, 2 paused, 1
/// graduated).
fn seed_student(center: usize, index: usize) -> (String, &'static str) {
    let first = FIRST_NAMES[(index + center * 5) % FIRST_NAMES.len()];
    // A stride prime to the list's length walks every last name before repeating a pair.
    let last = LAST_NAMES[(index / FIRST_NAMES.len() * 7 + center) % LAST_NAMES.len()];
    let status = match index % 10 {
        0..7 => STUDENT_STATUSES[0],
        7..9 => STUDENT_STATUSES[1],
        _ => STUDENT_STATUSES[2],
    };
    (format!("{first} {last}"), status)
}

/// Writes the seed data unless a center exists; returns `{seeded, centers, students}`.
pub async fn seed_demo_data(runtime: &Runtime) -> Result<Value, FunctionError> {
    runtime.run_mutation("seed:demoData", Object::new(), &Identity::System).await.result
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(
        Function::mutation("seed:demoData", object_validator([]), |ctx, _args| {
            let seeded = ctx.db().query(Query::table("centers")).first()?.is_none();
            if seeded {
                for (center_index, center_name) in CENTER_NAMES.iter().enumerate() {
                    let center = Object::from([("name".to_owned(), Value::from(*center_name))]);
                    let center = Value::String(ctx.db().insert("centers", center)?.encode());
                    for index in 0..SEED_STUDENTS_PER_CENTER {
                        let (name, status) = seed_student(center_index, index);
                        let student = Object::from([
                            ("centerId".to_owned(), center.clone()),
                            ("name".to_owned(), Value::String(name)),
                            ("status".to_owned(), Value::from(status)),
                        ]);
                        ctx.db().insert("students", student)?;
                    }
                }
            }
            let count = |n: usize| Value::Float64(if seeded { n as f64 } else { 0.0 });
            Ok(Value::Object(Object::from([
                ("seeded".to_owned(), Value::Boolean(seeded)),
                ("centers".to_owned(), count(SEED_CENTERS)),
                ("students".to_owned(), count(SEED_CENTERS * SEED_STUDENTS_PER_CENTER)),
            ])))
        })
        .internal(),
    )?;
    Ok(())
}
