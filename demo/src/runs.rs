//! Practice runs: what a student played, listed by the app's REST API (`GET /api/v1/runs`).

use livebase_functions::{Function, Registry, RegistryError, from_args, object_validator};
use livebase_value::{Object, ObjectField, Validator, Value};
use serde::Deserialize;

use crate::fields::checked_name;
use crate::limits::MAX_TITLE_CHARS;
use crate::users::current_user;

#[derive(Deserialize)]
struct CreateArgs {
    title: String,
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry.register(Function::mutation(
        "runs:create",
        object_validator([("title", ObjectField::required(Validator::String))]),
        |ctx, args| {
            let CreateArgs { title } = from_args(args)?;
            let user = current_user(ctx)?;
            let run = Object::from([
                ("title".to_owned(), Value::String(checked_name("A run's title", &title, MAX_TITLE_CHARS)?)),
                ("userId".to_owned(), Value::String(user.encode())),
            ]);
            Ok(Value::String(ctx.db().insert("runs", run)?.encode()))
        },
    ))?;
    Ok(())
}
