//! The functions the benchmarks call, in-process and through the server child process.
//!
//! - `accounts:transfer({from, to, amount})`: the transfer of SpacetimeDB's "keynote" benchmark,
//!   reading two balances and writing both.
//! - `items:get({key})` / `items:set({key, sentAt})`: one document per key, through an index, so a
//!   subscription to one key reads one interval; `sentAt` carries the writer's clock to the
//!   subscribers, which is how fan-out latency is measured.
//! - `items:insert({writer, sequence})`: the small durable mutation of the commit-rate scenarios.
//! - `rows:page({paginationOpts})`: a page of `rows` in `key` order, as `usePaginatedQuery` loads
//!   it; `rows:insert({key})`, `rows:delete({key})` (the row must exist) and `rows:all({})` (every
//!   row in `key` order) for the pagination churn scenario.

use std::collections::BTreeMap;

use livebase_functions::{
    Function, FunctionCtx, FunctionError, Registry, object_validator, pagination_options, pagination_opts_validator,
    pagination_result,
};
use livebase_query::Query;
use livebase_store::{Schema, TableSchema};
use livebase_value::{DocumentId, Object, ObjectField, Validator, Value};

pub const ACCOUNTS: &str = "accounts";
pub const ITEMS: &str = "items";
const ITEMS_BY_KEY: &str = "by_key";
const ROWS: &str = "rows";
const ROWS_BY_KEY: &str = "by_key";

pub fn schema() -> Schema {
    Schema {
        tables: vec![
            TableSchema::new(ACCOUNTS),
            TableSchema::new(ITEMS).index(ITEMS_BY_KEY, &["key"]),
            TableSchema::new(ROWS).index(ROWS_BY_KEY, &["key"]),
        ],
    }
}

pub fn registry() -> Registry {
    let required = ObjectField::required;
    let mut registry = Registry::new();
    let account = || required(Validator::Id(ACCOUNTS.to_owned()));
    let functions = [
        Function::mutation(
            "accounts:transfer",
            object_validator([("from", account()), ("to", account()), ("amount", required(Validator::Int64))]),
            |ctx, args| transfer(ctx, &args).map(|()| Value::Null),
        ),
        Function::query("items:get", object_validator([("key", required(Validator::Float64))]), |ctx, args| {
            let item = ctx
                .db()
                .query(Query::table(ITEMS).with_index(ITEMS_BY_KEY, |range| range.eq("key", args["key"].clone())))
                .first()?;
            Ok(item.map_or(Value::Null, |item| Value::Object(item.object().clone())))
        }),
        Function::mutation(
            "items:set",
            object_validator([("key", required(Validator::Float64)), ("sentAt", required(Validator::Float64))]),
            |ctx, args| {
                let key = args["key"].clone();
                let existing = ctx
                    .db()
                    .query(Query::table(ITEMS).with_index(ITEMS_BY_KEY, |range| range.eq("key", key)))
                    .first()?;
                match existing {
                    Some(item) => ctx
                        .db()
                        .patch(item.id(), BTreeMap::from([("sentAt".to_owned(), Some(args["sentAt"].clone()))]))?,
                    None => {
                        ctx.db().insert(ITEMS, args)?;
                    }
                }
                Ok(Value::Null)
            },
        ),
        Function::mutation(
            "items:insert",
            object_validator([("writer", required(Validator::Float64)), ("sequence", required(Validator::Float64))]),
            |ctx, args| Ok(Value::String(ctx.db().insert(ITEMS, args)?.encode())),
        ),
        Function::query(
            "rows:page",
            object_validator([("paginationOpts", required(pagination_opts_validator()))]),
            |ctx, args| {
                let options = pagination_options(&args["paginationOpts"])?;
                Ok(pagination_result(&ctx.db().query(rows_in_key_order()).paginate(&options)?))
            },
        ),
        Function::query("rows:all", object_validator([]), |ctx, _| {
            let rows = ctx.db().query(rows_in_key_order()).collect()?;
            Ok(Value::Array(rows.iter().map(|row| Value::Object(row.object().clone())).collect()))
        }),
        Function::mutation("rows:insert", object_validator([("key", required(Validator::Float64))]), |ctx, args| {
            Ok(Value::String(ctx.db().insert(ROWS, args)?.encode()))
        }),
        Function::mutation("rows:delete", object_validator([("key", required(Validator::Float64))]), |ctx, args| {
            let key = args["key"].clone();
            let row =
                ctx.db().query(Query::table(ROWS).with_index(ROWS_BY_KEY, |range| range.eq("key", key))).first()?;
            ctx.db().delete(row.ok_or_else(|| FunctionError::user("no row has this key"))?.id())?;
            Ok(Value::Null)
        }),
    ];
    for function in functions {
        registry.register(function).expect("the benchmark app's functions are valid and distinct");
    }
    registry
}

fn rows_in_key_order() -> Query {
    Query::table(ROWS).with_index(ROWS_BY_KEY, |range| range)
}

fn transfer(ctx: &mut FunctionCtx, args: &Object) -> Result<(), FunctionError> {
    let amount = match args["amount"] {
        Value::Int64(amount) if amount > 0 => amount,
        _ => return Err(FunctionError::user("`amount` must be positive")),
    };
    let (from, to) = (account_id(ctx, &args["from"])?, account_id(ctx, &args["to"])?);
    if from == to {
        return Err(FunctionError::user("a transfer needs two accounts"));
    }
    let from_balance = balance(ctx, from)?;
    let to_balance = balance(ctx, to)?;
    if from_balance < amount {
        return Err(FunctionError::user("insufficient funds"));
    }
    set_balance(ctx, from, from_balance - amount)?;
    set_balance(ctx, to, to_balance + amount)
}

fn account_id(ctx: &mut FunctionCtx, id: &Value) -> Result<DocumentId, FunctionError> {
    let Value::String(id) = id else { return Err(FunctionError::failed("ids are validated as strings")) };
    ctx.db().normalize_id(ACCOUNTS, id).ok_or_else(|| FunctionError::user("not an account id"))
}

/// An account's balance: an `Int64` field, so sums stay exact.
pub fn balance_of(fields: &Object) -> Option<i64> {
    match fields.get("balance") {
        Some(Value::Int64(balance)) => Some(*balance),
        _ => None,
    }
}

fn balance(ctx: &mut FunctionCtx, id: DocumentId) -> Result<i64, FunctionError> {
    let account = ctx.db().get(id)?.ok_or_else(|| FunctionError::user("no such account"))?;
    balance_of(account.object()).ok_or_else(|| FunctionError::failed("an account without an integer balance"))
}

fn set_balance(ctx: &mut FunctionCtx, id: DocumentId, balance: i64) -> Result<(), FunctionError> {
    ctx.db().patch(id, BTreeMap::from([("balance".to_owned(), Some(Value::Int64(balance)))]))
}
