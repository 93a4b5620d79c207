//! A small app built into the server until apps can be deployed: a message list, enough to
//! exercise queries, mutations and actions end to end with the official clients.

use livebase_functions::{
    Function, FunctionError, HttpMethod, HttpResponse, HttpRoute, Registry, object_validator, pagination_options,
    pagination_opts_validator, pagination_result,
};
use livebase_query::{Order, Query};
use livebase_store::{Schema, TableSchema};
use livebase_value::{ObjectField, Validator, Value};

pub fn schema() -> Schema {
    Schema { tables: vec![TableSchema::new("messages")] }
}

/// `messages:list` (every message, oldest first), `messages:page({paginationOpts})` (a page of
/// messages, newest first), `messages:send({body})` (returns the new id), `messages:remove({id})`,
/// `messages:echo({text})`, an action returning `text`, and `auth:whoami`: the caller's identity
/// as Convex's `ctx.auth.getUserIdentity()` gives it, or `null`. One HTTP route: `POST /messages`
/// sends its body (text) as a message through `messages:send` and answers 201 with the new id.
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
            registry.register(Function::query(
                "messages:page",
                object_validator([("paginationOpts", ObjectField::required(pagination_opts_validator()))]),
                |ctx, args| {
                    let options = pagination_options(&args["paginationOpts"])?;
                    let page = ctx.db().query(Query::table("messages").order(Order::Desc)).paginate(&options)?;
                    Ok(pagination_result(&page))
                },
            ))
        })
        .and_then(|registry| {
            registry.register(Function::mutation(
                "messages:remove",
                object_validator([("id", ObjectField::required(Validator::Id("messages".to_owned())))]),
                |ctx, args| {
                    let id = match &args["id"] {
                        Value::String(id) => ctx.db().normalize_id("messages", id),
                        _ => None,
                    };
                    let id = id.ok_or_else(|| FunctionError::failed("`id` is validated as an id of `messages`"))?;
                    ctx.db().delete(id)?;
                    Ok(Value::Null)
                },
            ))
        })
        .and_then(|registry| {
            registry.register(Function::query("auth:whoami", object_validator([]), |ctx, _args| {
                Ok(ctx.auth().get_user_identity().map_or(Value::Null, |user| {
                    let mut identity = user.claims.clone();
                    identity.insert("tokenIdentifier".to_owned(), Value::from(user.token_identifier.as_str()));
                    identity.insert("subject".to_owned(), Value::from(user.subject.as_str()));
                    identity.insert("issuer".to_owned(), Value::from(user.issuer.as_str()));
                    Value::Object(identity)
                }))
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
        .and_then(|registry| {
            registry.route(HttpRoute::exact(HttpMethod::Post, "/messages", |ctx, request| async move {
                let body = String::from_utf8(request.body)
                    .map_err(|_| FunctionError::failed("The message is not UTF-8 text"))?;
                let mut args = livebase_value::Object::new();
                args.insert("body".to_owned(), Value::String(body));
                let id = ctx.run_mutation("messages:send", args).await?;
                let Value::String(id) = id else { return Err(FunctionError::failed("`messages:send` returns an id")) };
                Ok(HttpResponse::new(201).with_body(id))
            }))
        })
        .expect("the built-in app's functions are valid and distinct");
    registry
}

/// `GET /api/v1/messages`: the messages as a REST list, newest first (see `rest`).
pub fn rest_lists() -> Vec<crate::rest::RestList> {
    vec![crate::rest::RestList::new("/api/v1/messages", "messages")]
}
