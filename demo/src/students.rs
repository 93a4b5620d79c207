//! Centers and their students: the live, paginated list of the demo (`students:listByCenter`) and the
//! admin actions that change it.

use livebase_functions::{
    Function, Registry, RegistryError, from_args, object_validator, pagination_options, pagination_opts_validator,
    pagination_result,
};
use livebase_query::{Order, Query};
use livebase_value::{Object, ObjectField, Validator, Value};
use serde::Deserialize;

use crate::error::{ErrorCode, app_error};
use crate::fields::{checked_name, document_value, validated_id};
use crate::limits::{MAX_CENTERS_LISTED, MAX_NAME_CHARS};

/// A student's status, the second field of `by_center_status`.
pub const STUDENT_STATUSES: [&str; 3] = ["active", "paused", "graduated"];

fn status_validator() -> Validator {
    Validator::Union(STUDENT_STATUSES.iter().map(|status| Validator::Literal(Value::from(*status))).collect())
}

fn id_field(table: &str) -> ObjectField {
    ObjectField::required(Validator::Id(table.to_owned()))
}

#[derive(Deserialize)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
struct NameArgs {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateStudentArgs {
    center_id: String,
    name: String,
    status: String,
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    registry
        .register(Function::mutation(
            "centers:create",
            object_validator([("name", ObjectField::required(Validator::String))]),
            |ctx, args| {
                let NameArgs { name } = from_args(args)?;
                let center = Object::from([(
                    "name".to_owned(),
                    Value::String(checked_name("A center's name", &name, MAX_NAME_CHARS)?),
                )]);
                Ok(Value::String(ctx.db().insert("centers", center)?.encode()))
            },
        ))?
        .register(Function::query("centers:list", object_validator([]), |ctx, _args| {
            let centers = ctx.db().query(Query::table("centers")).take(MAX_CENTERS_LISTED)?;
            Ok(Value::Array(centers.iter().map(document_value).collect()))
        }))?
        .register(Function::query("students:get", object_validator([("id", id_field("students"))]), |ctx, args| {
            let IdArgs { id } = from_args(args)?;
            let id = validated_id(ctx, "students", &id);
            Ok(ctx.db().get(id)?.map_or(Value::Null, |student| document_value(&student)))
        }))?
        // Ordered by the index, newest first: by status (descending), then newest first within a status,
        // as the seed's `withIndex("by_center_status", q => q.eq("centerId", id)).order("desc")`.
        .register(Function::query(
            "students:listByCenter",
            object_validator([
                ("centerId", id_field("centers")),
                ("paginationOpts", ObjectField::required(pagination_opts_validator())),
            ]),
            |ctx, args| {
                let options = pagination_options(&args["paginationOpts"])?;
                let Value::String(center) = &args["centerId"] else { unreachable!("validated as an id") };
                let center = validated_id(ctx, "centers", center).encode();
                let students = Query::table("students")
                    .with_index("by_center_status", |q| q.eq("centerId", center))
                    .order(Order::Desc);
                Ok(pagination_result(&ctx.db().query(students).paginate(&options)?))
            },
        ))?
        .register(Function::mutation(
            "students:create",
            object_validator([
                ("centerId", id_field("centers")),
                ("name", ObjectField::required(Validator::String)),
                ("status", ObjectField::required(status_validator())),
            ]),
            |ctx, args| {
                let CreateStudentArgs { center_id, name, status } = from_args(args)?;
                let center = validated_id(ctx, "centers", &center_id);
                if ctx.db().get(center)?.is_none() {
                    return Err(app_error(ErrorCode::NotFound, format!("There is no center `{center_id}`")));
                }
                let student = Object::from([
                    ("centerId".to_owned(), Value::String(center.encode())),
                    ("name".to_owned(), Value::String(checked_name("A student's name", &name, MAX_NAME_CHARS)?)),
                    ("status".to_owned(), Value::String(status)),
                ]);
                Ok(Value::String(ctx.db().insert("students", student)?.encode()))
            },
        ))?
        .register(Function::mutation(
            "students:remove",
            object_validator([("id", id_field("students"))]),
            |ctx, args| {
                let IdArgs { id: encoded } = from_args(args)?;
                let id = validated_id(ctx, "students", &encoded);
                if ctx.db().get(id)?.is_none() {
                    return Err(app_error(ErrorCode::NotFound, format!("There is no student `{encoded}`")));
                }
                ctx.db().delete(id)?;
                Ok(Value::Null)
            },
        ))?;
    Ok(())
}
