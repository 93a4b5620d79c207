//! An app's configuration as its `convex/` folder declares it, read from the bundle's `config`
//! export: `schema.ts` (the `export()` of `defineSchema`) as the store's `Schema`, `crons.ts` (the
//! `export()` of `cronJobs()`) as crons of the registry, and `auth.config.ts` as `AuthConfig`.
//!
//! What Livebase has no equivalent for is left out with a warning (`AppConfig::warnings`), not
//! refused, so an app using it still runs the rest: search and vector indexes (queries using them
//! fail when they run), and staged indexes and validators (Convex does not use them either until
//! they are un-staged).

use std::time::Duration;

use livebase_auth::AuthConfig;
use livebase_functions::{CronSchedule, Registry};
use livebase_store::{IndexSchema, Schema, TableSchema};
use livebase_value::{Object, Validator, Value, from_convex_json};
use serde_json::Value as Json;

use crate::LoadError;

/// What `schema.ts`, `crons.ts` and `auth.config.ts` declare.
#[derive(Clone, Debug, Default)]
pub struct AppConfig {
    /// The tables and indexes, with document validators when `schemaValidation` is on (the default).
    pub schema: Option<Schema>,
    pub crons: Vec<CronJob>,
    pub auth: Option<AuthConfig>,
    /// What the app declares that Livebase leaves out, one sentence each.
    pub warnings: Vec<String>,
}

/// One job of `crons.ts`.
#[derive(Clone, Debug, PartialEq)]
pub struct CronJob {
    pub name: String,
    pub schedule: CronSchedule,
    /// The mutation or action it runs, `module:name`.
    pub function: String,
    pub args: Object,
}

impl AppConfig {
    /// Declares every cron in `registry`.
    pub fn register_crons(&self, registry: &mut Registry) -> Result<(), LoadError> {
        for cron in &self.crons {
            registry.cron(&cron.name, cron.schedule.clone(), &cron.function, cron.args.clone())?;
        }
        Ok(())
    }
}

/// The JSON the bundle's `config` export returns.
pub(crate) fn parse(json: &str) -> Result<AppConfig, LoadError> {
    let invalid = |file: &'static str| move |why: String| LoadError::Config { file, why };
    let json: Json = serde_json::from_str(json).map_err(|error| invalid("config")(error.to_string()))?;
    let mut config = AppConfig::default();
    if !json["schema"].is_null() {
        config.schema = Some(schema(&json["schema"], &mut config.warnings).map_err(invalid("schema.ts"))?);
    }
    if let Some(crons) = json["crons"].as_object() {
        config.crons =
            crons.iter().map(|(name, job)| cron(name, job)).collect::<Result<_, _>>().map_err(invalid("crons.ts"))?;
    }
    if !json["auth"].is_null() {
        let auth = AuthConfig::from_json(&json["auth"].to_string()).map_err(|error| {
            invalid("auth.config.ts")(format!(
                "{error} (its `process.env` is the deployment's environment variables: is one it reads unset?)"
            ))
        })?;
        config.auth = Some(auth);
    }
    Ok(config)
}

/// `{tables: [{tableName, indexes, searchIndexes, ..., documentType}], schemaValidation}`.
fn schema(json: &Json, warnings: &mut Vec<String>) -> Result<Schema, String> {
    let validation = json["schemaValidation"].as_bool().unwrap_or(true);
    let tables = json["tables"].as_array().ok_or("its export has no `tables` list")?;
    let mut schema = Schema::default();
    for table in tables {
        let name = table["tableName"].as_str().ok_or("a table has no `tableName`")?;
        let mut declared = TableSchema::new(name);
        for index in table["indexes"].as_array().into_iter().flatten() {
            let index_name = index["indexDescriptor"].as_str().ok_or(format!("an index of `{name}` has no name"))?;
            let fields = index["fields"].as_array().ok_or(format!("index `{name}.{index_name}` has no fields"))?;
            let fields = fields
                .iter()
                .map(|field| field.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("index `{name}.{index_name}`: fields are strings"))?;
            declared.indexes.push(IndexSchema { name: index_name.to_owned(), fields });
        }
        for (kind, leaves) in [
            ("searchIndexes", "search indexes are not supported: left out, and queries using them fail"),
            ("vectorIndexes", "vector indexes are not supported: left out, and queries using them fail"),
            ("stagedDbIndexes", "staged indexes are left out until they are un-staged"),
            ("stagedSearchIndexes", "staged search indexes are left out"),
            ("stagedVectorIndexes", "staged vector indexes are left out"),
        ] {
            for index in table[kind].as_array().into_iter().flatten() {
                let index_name = index["indexDescriptor"].as_str().unwrap_or("?");
                warnings.push(format!("schema.ts: index `{name}.{index_name}`: {leaves}"));
            }
        }
        if !table["stagedDocumentType"].is_null() {
            warnings.push(format!("schema.ts: table `{name}`: its staged validator is left out"));
        }
        if validation {
            let validator = Validator::from_json(&table["documentType"])
                .map_err(|error| format!("table `{name}`: its validator is invalid: {error}"))?;
            // `v.any()` documents: nothing to check.
            if validator != Validator::Any {
                declared.document_validator = Some(validator);
            }
        }
        schema.tables.push(declared);
    }
    schema.check().map_err(|error| error.to_string())?;
    Ok(schema)
}

/// `{name: "module:function", args: [convexJson], schedule: {type, ...}}`.
fn cron(name: &str, job: &Json) -> Result<CronJob, String> {
    let invalid = |why: String| format!("cron `{name}`: {why}");
    let function = job["name"].as_str().ok_or_else(|| invalid("it names no function".to_owned()))?;
    let args = match job["args"].as_array().map(Vec::as_slice) {
        Some([args]) => from_convex_json(args).map_err(|error| invalid(format!("its arguments: {error}")))?,
        _ => return Err(invalid("its arguments are not one object".to_owned())),
    };
    let Value::Object(args) = args else { return Err(invalid("its arguments are not an object".to_owned())) };
    let schedule = cron_schedule(&job["schedule"]).map_err(invalid)?;
    Ok(CronJob { name: name.to_owned(), schedule, function: function.to_owned(), args })
}

/// Convex's schedules as the registry's: intervals as intervals, the calendar ones (`hourly`,
/// `daily`, `weekly`, `monthly`) as the cron expressions they mean, in UTC (a missing minute is 0).
fn cron_schedule(schedule: &Json) -> Result<CronSchedule, String> {
    let number = |field: &str| schedule[field].as_u64();
    let minute = number("minuteUTC").unwrap_or(0);
    let hour = || number("hourUTC").ok_or("it has no `hourUTC`");
    let expression = match schedule["type"].as_str() {
        Some("interval") => {
            let seconds = match (number("seconds"), number("minutes"), number("hours")) {
                (Some(seconds), None, None) => seconds,
                (None, Some(minutes), None) => minutes * 60,
                (None, None, Some(hours)) => hours * 3_600,
                _ => return Err("an interval has one of `seconds`, `minutes` or `hours`".to_owned()),
            };
            return Ok(CronSchedule::Every(Duration::from_secs(seconds)));
        }
        Some("cron") => schedule["cron"].as_str().ok_or("it has no `cron` string")?.to_owned(),
        Some("hourly") => format!("{minute} * * * *"),
        Some("daily") => format!("{minute} {} * * *", hour()?),
        Some("weekly") => {
            let day = schedule["dayOfWeek"].as_str().unwrap_or_default();
            let day = DAYS_OF_WEEK.iter().position(|name| *name == day).ok_or(format!("no day of the week `{day}`"))?;
            format!("{minute} {} * * {day}", hour()?)
        }
        Some("monthly") => format!("{minute} {} {} * *", hour()?, number("day").ok_or("it has no `day`")?),
        other => return Err(format!("unknown schedule type {other:?}")),
    };
    Ok(CronSchedule::Expression(expression))
}

/// As cron expressions number them (Sunday is 0) and `crons.weekly` names them.
const DAYS_OF_WEEK: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(json: &str) -> Result<CronSchedule, String> {
        cron_schedule(&serde_json::from_str(json).expect("test JSON"))
    }

    #[test]
    fn every_convex_schedule_maps_to_the_registry_s() {
        let expression = |text: &str| Ok(CronSchedule::Expression(text.to_owned()));
        assert_eq!(schedule(r#"{"type":"interval","seconds":30}"#), Ok(CronSchedule::Every(Duration::from_secs(30))));
        assert_eq!(schedule(r#"{"type":"interval","minutes":2}"#), Ok(CronSchedule::Every(Duration::from_secs(120))));
        assert_eq!(schedule(r#"{"type":"interval","hours":1}"#), Ok(CronSchedule::Every(Duration::from_secs(3_600))));
        assert_eq!(schedule(r#"{"type":"hourly","minuteUTC":5}"#), expression("5 * * * *"));
        assert_eq!(schedule(r#"{"type":"hourly"}"#), expression("0 * * * *"));
        assert_eq!(schedule(r#"{"type":"daily","hourUTC":17,"minuteUTC":30}"#), expression("30 17 * * *"));
        assert_eq!(
            schedule(r#"{"type":"weekly","dayOfWeek":"tuesday","hourUTC":9,"minuteUTC":0}"#),
            expression("0 9 * * 2")
        );
        assert_eq!(schedule(r#"{"type":"monthly","day":1,"hourUTC":0}"#), expression("0 0 1 * *"));
        assert_eq!(schedule(r#"{"type":"cron","cron":"15 7 * * *"}"#), expression("15 7 * * *"));
        assert!(schedule(r#"{"type":"interval","seconds":1,"minutes":1}"#).is_err());
        assert!(schedule(r#"{"type":"weekly","dayOfWeek":"someday","hourUTC":9}"#).is_err());
        assert!(schedule(r#"{"type":"yearly"}"#).is_err());
    }
}
