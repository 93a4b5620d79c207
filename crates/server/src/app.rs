//! A small app built into the server until apps can be deployed: a message list, enough to
//! exercise queries, mutations and actions end to end with the official clients.

use livebase_functions::{Function, FunctionError, Registry, object_validator};
use livebase_query::Query;
use livebase_store::{Schema, TableSchema};
use livebase_value::{ObjectField, Validator, Value};

pub fn schema() -> Schema {
    Schema { tables: vec![TableSchema::new("messages")] }
}

/// `messages:list` (every message, oldest first), `messages:send({body})` (returns the new id),
/// `messages:echo({text})`, an action returning `text`.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    let body = || object_validator([("body", ObjectField::required(Validator::String))]);
    registry
        .register(Function::query("messages:list", object_validator([]), |ctx, _args| {
            let messages = ctx.db().query(Query::table("messages")).collect()?;
            Ok(Value::Array(messages.iter().map(|message| Value::Object(message.object().clone())).collect()))
        }))
        .and_then(|registry| {
            registry.register(Function::mutation("messages:send", body(), |ctx, args| {
                Ok(Value::String(ctx.db().insert("messages", args)?.encode()))
            }))
        })
        .and_then(|registry| {
            registry.register(Function::action(
                "messages:echo",
                object_validator([("text", ObjectField::required(Validator::String))]),
                |_ctx, args| async move {
                    args.get("text").cloned().ok_or_else(|| FunctionError::failed("`text` is validated"))
                },
            ))
        })
        .expect("the built-in app's functions are valid and distinct");
    registry
}
