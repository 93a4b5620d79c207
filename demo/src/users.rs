//! Users and who is calling. A user is a row of `users`; a client's token carries the user's id as its
//! subject (the `/auth/dev` route signs one after `users:signIn`), so "the current user" is the
//! document the identity's subject names.

use livebase_functions::{Function, FunctionCtx, FunctionError, Registry, RegistryError, from_args, object_validator};
use livebase_query::Query;
use livebase_value::{DocumentId, Object, ObjectField, Validator, Value};
use serde::Deserialize;

use crate::error::{ErrorCode, app_error};
use crate::fields::{checked_name, document_value, string_field};
use crate::limits::MAX_NAME_CHARS;

/// The calling user's id: the identity's subject, when it is the id of a user that exists.
pub(crate) fn current_user(ctx: &mut FunctionCtx<'_>) -> Result<DocumentId, FunctionError> {
    let Some(identity) = ctx.auth().get_user_identity() else {
        return Err(app_error(ErrorCode::NotSignedIn, "Sign in first"));
    };
    let not_a_user =
        || app_error(ErrorCode::NotSignedIn, "The token's subject is not a user of this app: sign in again");
    let user = ctx.db().normalize_id("users", &identity.subject).ok_or_else(not_a_user)?;
    ctx.db().get(user)?.ok_or_else(not_a_user)?;
    Ok(user)
}

/// A user's name.
pub(crate) fn user_name(ctx: &mut FunctionCtx<'_>, user: DocumentId) -> Result<String, FunctionError> {
    let user = ctx.db().get(user)?.expect("callers pass the id of a user that exists");
    Ok(string_field(&user, "name").to_owned())
}

#[derive(Deserialize)]
struct SignInArgs {
    name: String,
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry
        // Internal: the `/auth/dev` route calls it, then signs a token whose subject is the id returned.
        .register(
            Function::mutation(
                "users:signIn",
                object_validator([("name", ObjectField::required(Validator::String))]),
                |ctx, args| {
                    let SignInArgs { name } = from_args(args)?;
                    let name = checked_name("A user's name", &name, MAX_NAME_CHARS)?;
                    // A demo sign-in: the name is the account, so signing in again as "Ada" is Ada again.
                    let existing = Query::table("users").with_index("by_name", |q| q.eq("name", name.as_str()));
                    if let Some(user) = ctx.db().query(existing).first()? {
                        return Ok(Value::String(user.id().encode()));
                    }
                    let user = Object::from([("name".to_owned(), Value::String(name))]);
                    Ok(Value::String(ctx.db().insert("users", user)?.encode()))
                },
            )
            .internal(),
        )?
        .register(Function::query("users:me", object_validator([]), |ctx, _args| {
            if ctx.auth().get_user_identity().is_none() {
                return Ok(Value::Null);
            }
            let user = current_user(ctx)?;
            Ok(ctx.db().get(user)?.map_or(Value::Null, |user| document_value(&user)))
        }))?;
    Ok(())
}
