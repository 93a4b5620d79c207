//! The syscalls of the npm `convex` server library (`Convex.syscall` / `Convex.asyncSyscall`),
//! answered on a query's or mutation's [`FunctionCtx`] (the same database calls Rust handlers make,
//! so reads land in the same read set and pages in the same journal; `1.0/runUdf` runs the other
//! function in the same transaction) or on an action's [`ActionCtx`] (`1.0/actions/*`, `fetch`).

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use livebase_functions::{ActionCtx, FunctionCtx, FunctionError, HttpRequest, LogLevel, UserIdentity};
use livebase_query::{PaginationOptions, Query, QueryStream};
use livebase_store::Document;
use livebase_value::{DocumentId, Object, Value, from_convex_json, to_convex_json};
use serde_json::{Map, Value as Json, json};

use crate::engine::Host;
use crate::limits::MAX_OPEN_QUERY_STREAMS;

/// One call's syscalls.
pub(crate) struct Syscalls<'c, 'a> {
    ctx: &'c mut FunctionCtx<'a>,
    streams: HashMap<u64, QueryStream>,
    next_stream: u64,
    /// The first internal error a syscall met (the store down, say): the call fails with it whatever
    /// the JavaScript made of the error it saw, which only says `Server Error`.
    fault: Option<FunctionError>,
}

impl<'c, 'a> Syscalls<'c, 'a> {
    pub(crate) fn new(ctx: &'c mut FunctionCtx<'a>) -> Self {
        Syscalls { ctx, streams: HashMap::new(), next_stream: 0, fault: None }
    }

    /// The internal error a syscall met, if any.
    pub(crate) fn into_fault(self) -> Option<FunctionError> {
        self.fault
    }

    fn dispatch(&mut self, op: &str, args: &Json) -> Result<Json, FunctionError> {
        match op {
            "1.0/get" => {
                let id = self.id(op, args)?;
                Ok(self.ctx.db().get(id)?.as_deref().map_or(Json::Null, document))
            }
            "1.0/insert" => {
                let table = string(op, args, "table")?;
                let id = self.ctx.db().insert(table, object(op, args, "value")?)?;
                Ok(json!({"_id": id.encode()}))
            }
            "1.0/shallowMerge" => {
                let id = self.id(op, args)?;
                let changes = patch(op, field(op, args, "value")?)?;
                self.ctx.db().patch(id, changes)?;
                Ok(Json::Null)
            }
            "1.0/replace" => {
                let id = self.id(op, args)?;
                self.ctx.db().replace(id, object(op, args, "value")?)?;
                Ok(Json::Null)
            }
            "1.0/remove" => {
                let id = self.id(op, args)?;
                self.ctx.db().delete(id)?;
                Ok(Json::Null)
            }
            "1.0/db/normalizeId" => {
                let table = string(op, args, "table")?;
                let id = self.ctx.db().normalize_id(table, string(op, args, "idString")?);
                Ok(json!({"id": id.map(|id| id.encode())}))
            }
            "1.0/queryStream" => {
                if self.streams.len() >= MAX_OPEN_QUERY_STREAMS {
                    return Err(FunctionError::failed(format!(
                        "A function may read at most {MAX_OPEN_QUERY_STREAMS} queries at once \
                         (MAX_OPEN_QUERY_STREAMS): finish reading some first"
                    )));
                }
                let query = Query::from_json(field(op, args, "query")?)?;
                let stream = self.ctx.db().query(query).stream()?;
                self.next_stream += 1;
                self.streams.insert(self.next_stream, stream);
                Ok(json!({"queryId": self.next_stream}))
            }
            "1.0/queryStreamNext" => {
                let query_id = self.query_id(op, args)?;
                let Some(stream) = self.streams.get_mut(&query_id) else {
                    return Err(FunctionError::failed(format!("`{op}`: no query {query_id} is being read")));
                };
                match self.ctx.db().next(stream)? {
                    Some(found) => Ok(json!({"value": document(&found), "done": false})),
                    None => Ok(json!({"value": null, "done": true})),
                }
            }
            "1.0/queryCleanup" => {
                let query_id = self.query_id(op, args)?;
                Ok(Json::Bool(self.streams.remove(&query_id).is_some()))
            }
            "1.0/queryPage" => {
                let query = Query::from_json(field(op, args, "query")?)?;
                let options = page_options(op, args)?;
                Ok(self.ctx.db().query(query).paginate(&options)?.to_json())
            }
            "1.0/getUserIdentity" => Ok(self.ctx.auth().get_user_identity().map_or(Json::Null, identity)),
            "1.0/runUdf" => {
                let (path, call_args) = (function_name(op, args)?, object(op, args, "args")?);
                let result = match string(op, args, "udfType")? {
                    // A stale snapshot only spares Convex conflicts: reading the caller's is as good.
                    "query" | "snapshotQuery" => self.ctx.run_query(path, call_args)?,
                    "mutation" => self.ctx.run_mutation(path, call_args)?,
                    other => return Err(invalid(op, &format!("`udfType` must be query or mutation, not `{other}`"))),
                };
                Ok(to_convex_json(&result))
            }
            "1.0/schedule" => {
                let (path, call_args) = (function_name(op, args)?, object(op, args, "args")?);
                let id = self.ctx.scheduler().run_at(scheduled_time(op, args)?, path, call_args)?;
                Ok(Json::from(id.encode()))
            }
            "1.0/cancel_job" => {
                self.ctx.scheduler().cancel(job_id(op, args)?)?;
                Ok(Json::Null)
            }
            ENV => Ok(self.ctx.env(string(op, args, "name")?)?.map_or(Json::Null, Json::from)),
            ENV_NAMES => Ok(Json::from(self.ctx.env_vars()?.into_keys().collect::<Vec<_>>())),
            FETCH => Err(FunctionError::failed(
                "fetch is only available in actions: queries and mutations must not reach the network",
            )),
            _ => Err(unknown(op)),
        }
    }

    /// The document id in `args.id`; of table `args.table` when the call names one (`db.get(table, id)`).
    fn id(&mut self, op: &str, args: &Json) -> Result<DocumentId, FunctionError> {
        let id = string(op, args, "id")?;
        match args.get("table").and_then(Json::as_str) {
            Some(table) => self.ctx.db().normalize_id(table, id).ok_or_else(|| {
                FunctionError::failed(format!(
                    "Invalid argument `id` for `{op}`: `{id}` is not an id of table `{table}`"
                ))
            }),
            None => DocumentId::decode(id)
                .map_err(|_| FunctionError::failed(format!("Invalid argument `id` for `{op}`: `{id}` is not an id"))),
        }
    }

    fn query_id(&self, op: &str, args: &Json) -> Result<u64, FunctionError> {
        field(op, args, "queryId")?.as_u64().ok_or_else(|| invalid(op, "`queryId` must be a whole number"))
    }
}

impl Host for Syscalls<'_, '_> {
    fn syscall(&mut self, op: &str, args: &str) -> Result<String, FunctionError> {
        let args: Json =
            serde_json::from_str(args).map_err(|error| invalid(op, &format!("its arguments are not JSON: {error}")))?;
        let result = self.dispatch(op, &args);
        if let Err(error @ FunctionError::Internal(_)) = &result {
            self.fault.get_or_insert_with(|| error.clone());
        }
        Ok(result?.to_string())
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.ctx.log(level, message);
    }
}

/// The syscall `process.env.NAME` makes in a query or mutation: `{name}`, answered with the value or
/// `null`. (An action's `process.env` holds the variables as of its start: its syscalls are async.)
const ENV: &str = "1.0/livebase/env";

/// The syscall enumerating `process.env` makes in a query or mutation: answered with every name.
const ENV_NAMES: &str = "1.0/livebase/envNames";

/// The syscall the `fetch` of `web.js` makes: `{url, method, headers: [[name, value]...], body: base64 |
/// null}`, answered `{status, statusText, headers, body: base64}`.
const FETCH: &str = "1.0/livebase/fetch";

/// Answers an action's (or HTTP action's) async syscall on its [`ActionCtx`].
pub(crate) async fn action_syscall(ctx: &ActionCtx, op: &str, args: &str) -> Result<String, FunctionError> {
    let args: Json =
        serde_json::from_str(args).map_err(|error| invalid(op, &format!("its arguments are not JSON: {error}")))?;
    let result = match op {
        "1.0/actions/query" => {
            to_convex_json(&ctx.run_query(function_name(op, &args)?, object(op, &args, "args")?).await?)
        }
        "1.0/actions/mutation" => {
            to_convex_json(&ctx.run_mutation(function_name(op, &args)?, object(op, &args, "args")?).await?)
        }
        "1.0/actions/action" => {
            to_convex_json(&ctx.run_action(function_name(op, &args)?, object(op, &args, "args")?).await?)
        }
        "1.0/actions/schedule" => {
            let (path, call_args) = (function_name(op, &args)?, object(op, &args, "args")?);
            Json::from(ctx.scheduler().run_at(scheduled_time(op, &args)?, path, call_args).await?.encode())
        }
        "1.0/actions/cancel_job" => {
            ctx.scheduler().cancel(job_id(op, &args)?).await?;
            Json::Null
        }
        "1.0/getUserIdentity" => ctx.auth().get_user_identity().map_or(Json::Null, identity),
        FETCH => fetch(ctx, op, &args).await?,
        _ => return Err(unknown(op)),
    };
    Ok(result.to_string())
}

async fn fetch(ctx: &ActionCtx, op: &str, args: &Json) -> Result<Json, FunctionError> {
    let headers = match field(op, args, "headers")? {
        Json::Array(pairs) => pairs.iter().map(|pair| header(op, pair)).collect::<Result<_, _>>()?,
        _ => return Err(invalid(op, "`headers` must be a list of [name, value] pairs")),
    };
    let body = match args.get("body") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::String(body)) => BASE64.decode(body).map_err(|error| invalid(op, &format!("`body`: {error}")))?,
        Some(_) => return Err(invalid(op, "`body` must be base64 or null")),
    };
    let request = HttpRequest {
        method: string(op, args, "method")?.to_owned(),
        url: string(op, args, "url")?.to_owned(),
        headers,
        body,
    };
    let response = ctx.fetch(request).await?;
    let headers: Vec<[&str; 2]> =
        response.headers.iter().map(|(name, value)| [name.as_str(), value.as_str()]).collect();
    // The status line's reason is not kept (HTTP/2 has none): `statusText` is empty, as it is there.
    Ok(json!({"status": response.status, "statusText": "", "headers": headers, "body": BASE64.encode(&response.body)}))
}

fn header(op: &str, pair: &Json) -> Result<(String, String), FunctionError> {
    match pair.as_array().map(Vec::as_slice) {
        Some([Json::String(name), Json::String(value)]) => Ok((name.clone(), value.clone())),
        _ => Err(invalid(op, &format!("a header must be a [name, value] pair of strings, not {pair}"))),
    }
}

/// The function a call or job names. Convex's function handles and component references have no
/// meaning here.
fn function_name<'j>(op: &str, args: &'j Json) -> Result<&'j str, FunctionError> {
    if args.get("name").is_none() && (args.get("functionHandle").is_some() || args.get("reference").is_some()) {
        return Err(FunctionError::failed(format!(
            "`{op}`: Livebase runs functions by name only, not through function handles or component references"
        )));
    }
    string(op, args, "name")
}

/// A job's time: the library sends seconds since the Unix epoch, the scheduler takes milliseconds.
fn scheduled_time(op: &str, args: &Json) -> Result<f64, FunctionError> {
    let seconds = field(op, args, "ts")?.as_f64().ok_or_else(|| invalid(op, "`ts` must be a number"))?;
    Ok(seconds * 1_000.0)
}

fn job_id(op: &str, args: &Json) -> Result<DocumentId, FunctionError> {
    let id = string(op, args, "id")?;
    DocumentId::decode(id).map_err(|_| invalid(op, &format!("`{id}` is not the id of a scheduled function")))
}

fn unknown(op: &str) -> FunctionError {
    FunctionError::failed(format!("Livebase does not implement the syscall `{op}`"))
}

fn document(document: &Document) -> Json {
    to_convex_json(&Value::Object(document.object().clone()))
}

/// Convex's `UserIdentity`: the token's other claims beside the three it always has.
fn identity(user: &UserIdentity) -> Json {
    let mut fields: Map<String, Json> =
        user.claims.iter().map(|(name, value)| (name.clone(), to_convex_json(value))).collect();
    fields.insert("tokenIdentifier".to_owned(), Json::from(user.token_identifier.as_str()));
    fields.insert("subject".to_owned(), Json::from(user.subject.as_str()));
    fields.insert("issuer".to_owned(), Json::from(user.issuer.as_str()));
    Json::Object(fields)
}

/// `1.0/queryPage`'s options: `pageSize`, `cursor`, `endCursor`, `maximumRowsRead`, `maximumBytesRead`.
fn page_options(op: &str, args: &Json) -> Result<PaginationOptions, FunctionError> {
    let cursor = |name: &str| match args.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(cursor)) => Ok(Some(cursor.clone())),
        Some(_) => Err(invalid(op, &format!("`{name}` must be a string or null"))),
    };
    let count = |name: &str| match args.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(number) => match number.as_f64() {
            Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(Some(n as usize)),
            _ => Err(invalid(op, &format!("`{name}` must be a whole number, not {number}"))),
        },
    };
    let page_size = count("pageSize")?.ok_or_else(|| invalid(op, "`pageSize` is missing"))?;
    let mut options = PaginationOptions::new(page_size, cursor("cursor")?);
    options.end_cursor = cursor("endCursor")?;
    options.maximum_rows_read = count("maximumRowsRead")?;
    options.maximum_bytes_read = count("maximumBytesRead")?;
    Ok(options)
}

/// `db.patch`'s value: fields set to `undefined` (`{"$undefined": null}`) are removed.
fn patch(op: &str, value: &Json) -> Result<BTreeMap<String, Option<Value>>, FunctionError> {
    let Json::Object(fields) = value else { return Err(invalid(op, "`value` must be an object")) };
    let undefined = json!({"$undefined": null});
    fields
        .iter()
        .map(|(name, value)| {
            let value = if *value == undefined { None } else { Some(convex_value(op, value)?) };
            Ok((name.clone(), value))
        })
        .collect()
}

fn object(op: &str, args: &Json, name: &str) -> Result<Object, FunctionError> {
    match convex_value(op, field(op, args, name)?)? {
        Value::Object(object) => Ok(object),
        other => Err(invalid(op, &format!("`{name}` must be an object, not {}", other.type_name()))),
    }
}

fn convex_value(op: &str, json: &Json) -> Result<Value, FunctionError> {
    from_convex_json(json).map_err(|error| invalid(op, &error.to_string()))
}

fn string<'j>(op: &str, args: &'j Json, name: &str) -> Result<&'j str, FunctionError> {
    field(op, args, name)?.as_str().ok_or_else(|| invalid(op, &format!("`{name}` must be a string")))
}

fn field<'j>(op: &str, args: &'j Json, name: &str) -> Result<&'j Json, FunctionError> {
    args.get(name).ok_or_else(|| invalid(op, &format!("`{name}` is missing")))
}

fn invalid(op: &str, why: &str) -> FunctionError {
    FunctionError::failed(format!("Invalid arguments to the syscall `{op}`: {why}"))
}
