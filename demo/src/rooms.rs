//! Piano Mirror's rooms: a host creates one under a short code (the slug, `ABC123`) that peers type in
//! to join. A room is open while it has peers; the last one to leave closes it, which frees its slug.

use std::collections::BTreeMap;
use std::sync::Arc;

use livebase_functions::{Function, FunctionCtx, FunctionError, Registry, RegistryError, from_args, object_validator};
use livebase_query::Query;
use livebase_store::Document;
use livebase_value::{DocumentId, Object, ObjectField, Validator, Value};
use serde::Deserialize;

use crate::error::{ErrorCode, app_error};
use crate::fields::{checked_name, document_value, string_field, validated_id};
use crate::limits::{MAX_CLASS_PEERS, MAX_NAME_CHARS, MAX_ONE_ON_ONE_PEERS, MAX_SLUG_CHARS, MIN_SLUG_CHARS};
use crate::users::{current_user, user_name};

const OPEN: &str = "open";
const CLOSED: &str = "closed";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RoomKind {
    /// A teacher and a student.
    #[default]
    OneOnOne,
    Class,
}

impl RoomKind {
    fn as_str(self) -> &'static str {
        match self {
            RoomKind::OneOnOne => "one-on-one",
            RoomKind::Class => "class",
        }
    }

    fn parse(kind: &str) -> RoomKind {
        match kind {
            "one-on-one" => RoomKind::OneOnOne,
            "class" => RoomKind::Class,
            other => panic!("the app writes only known room kinds, not `{other}`"),
        }
    }

    fn capacity(self) -> usize {
        match self {
            RoomKind::OneOnOne => MAX_ONE_ON_ONE_PEERS,
            RoomKind::Class => MAX_CLASS_PEERS,
        }
    }
}

/// The slug as stored: upper case, so `abc123` finds `ABC123`.
fn checked_slug(slug: &str) -> Result<String, FunctionError> {
    let slug = slug.trim().to_ascii_uppercase();
    let chars = slug.chars().count();
    if !(MIN_SLUG_CHARS..=MAX_SLUG_CHARS).contains(&chars) || !slug.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(app_error(
            ErrorCode::Invalid,
            format!("A room code is {MIN_SLUG_CHARS} to {MAX_SLUG_CHARS} letters and digits, not `{slug}`"),
        ));
    }
    Ok(slug)
}

/// The display name a peer gets: the one given, else the user's name.
fn display_name(ctx: &mut FunctionCtx<'_>, user: DocumentId, given: Option<String>) -> Result<String, FunctionError> {
    match given {
        Some(name) => checked_name("A display name", &name, MAX_NAME_CHARS),
        None => user_name(ctx, user),
    }
}

fn open_room(ctx: &mut FunctionCtx<'_>, slug: &str) -> Result<Option<Arc<Document>>, FunctionError> {
    let open = Query::table("rooms").with_index("by_slug_status", |q| q.eq("slug", slug).eq("status", OPEN));
    // `unique`: slugs are unique among open rooms, so a second one is a bug worth failing on.
    ctx.db().query(open).unique()
}

/// The user's row in `roomPeers` for `room`, if the user is in it.
pub(crate) fn peer(
    ctx: &mut FunctionCtx<'_>,
    room: DocumentId,
    user: DocumentId,
) -> Result<Option<Arc<Document>>, FunctionError> {
    let query = Query::table("roomPeers")
        .with_index("by_room_user", |q| q.eq("roomId", room.encode()).eq("userId", user.encode()));
    ctx.db().query(query).unique()
}

/// Peers of `room`, in the order they joined; at most `limit`.
fn peers(ctx: &mut FunctionCtx<'_>, room: DocumentId, limit: usize) -> Result<Vec<Arc<Document>>, FunctionError> {
    ctx.db().query(Query::table("roomPeers").with_index("by_room", |q| q.eq("roomId", room.encode()))).take(limit)
}

fn add_peer(ctx: &mut FunctionCtx<'_>, room: DocumentId, user: DocumentId, name: String) -> Result<(), FunctionError> {
    let peer = Object::from([
        ("roomId".to_owned(), Value::String(room.encode())),
        ("userId".to_owned(), Value::String(user.encode())),
        ("displayName".to_owned(), Value::String(name)),
    ]);
    ctx.db().insert("roomPeers", peer)?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateArgs {
    slug: String,
    kind: Option<RoomKind>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinArgs {
    slug: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomArgs {
    room_id: String,
}

fn room_id_args() -> Validator {
    object_validator([("roomId", ObjectField::required(Validator::Id("rooms".to_owned())))])
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    let kind = Validator::Union(
        [RoomKind::OneOnOne, RoomKind::Class]
            .iter()
            .map(|kind| Validator::Literal(Value::from(kind.as_str())))
            .collect(),
    );
    registry
        .register(Function::mutation(
            "rooms:create",
            object_validator([
                ("slug", ObjectField::required(Validator::String)),
                ("kind", ObjectField::optional(kind)),
                ("displayName", ObjectField::optional(Validator::String)),
            ]),
            |ctx, args| {
                let CreateArgs { slug, kind, display_name: given } = from_args(args)?;
                let user = current_user(ctx)?;
                let slug = checked_slug(&slug)?;
                let name = display_name(ctx, user, given)?;
                if open_room(ctx, &slug)?.is_some() {
                    return Err(app_error(ErrorCode::SlugTaken, format!("An open room already has the code `{slug}`")));
                }
                let room = Object::from([
                    ("slug".to_owned(), Value::String(slug)),
                    ("kind".to_owned(), Value::from(kind.unwrap_or_default().as_str())),
                    ("hostUserId".to_owned(), Value::String(user.encode())),
                    ("status".to_owned(), Value::from(OPEN)),
                ]);
                let room = ctx.db().insert("rooms", room)?;
                add_peer(ctx, room, user, name)?;
                Ok(Value::String(room.encode()))
            },
        ))?
        .register(Function::mutation(
            "rooms:join",
            object_validator([
                ("slug", ObjectField::required(Validator::String)),
                ("displayName", ObjectField::optional(Validator::String)),
            ]),
            |ctx, args| {
                let JoinArgs { slug, display_name: given } = from_args(args)?;
                let user = current_user(ctx)?;
                let slug = checked_slug(&slug)?;
                let Some(room) = open_room(ctx, &slug)? else {
                    return Err(app_error(ErrorCode::NotFound, format!("No open room has the code `{slug}`")));
                };
                let room_id = room.id();
                // Joining again (a reload) keeps the peer, renamed if a name is given.
                if let Some(peer) = peer(ctx, room_id, user)? {
                    if let Some(given) = given {
                        let name = checked_name("A display name", &given, MAX_NAME_CHARS)?;
                        ctx.db().patch(
                            peer.id(),
                            BTreeMap::from([("displayName".to_owned(), Some(Value::String(name)))]),
                        )?;
                    }
                    return Ok(Value::String(room_id.encode()));
                }
                let capacity = RoomKind::parse(string_field(&room, "kind")).capacity();
                if peers(ctx, room_id, capacity)?.len() >= capacity {
                    return Err(app_error(
                        ErrorCode::RoomFull,
                        format!("Room `{slug}` is full: it has {capacity} peers, as many as its kind allows"),
                    ));
                }
                let name = display_name(ctx, user, given)?;
                add_peer(ctx, room_id, user, name)?;
                Ok(Value::String(room_id.encode()))
            },
        ))?
        // Leaving a room one is not in does nothing: a page being closed may leave twice.
        .register(Function::mutation("rooms:leave", room_id_args(), |ctx, args| {
            let RoomArgs { room_id } = from_args(args)?;
            let user = current_user(ctx)?;
            let room = validated_id(ctx, "rooms", &room_id);
            let Some(peer) = peer(ctx, room, user)? else { return Ok(Value::Null) };
            ctx.db().delete(peer.id())?;
            if peers(ctx, room, 1)?.is_empty() {
                ctx.db().patch(room, BTreeMap::from([("status".to_owned(), Some(Value::from(CLOSED)))]))?;
            }
            Ok(Value::Null)
        }))?
        .register(Function::query("rooms:peers", room_id_args(), |ctx, args| {
            let RoomArgs { room_id } = from_args(args)?;
            let user = current_user(ctx)?;
            let room = validated_id(ctx, "rooms", &room_id);
            if ctx.db().get(room)?.is_none() {
                return Err(app_error(ErrorCode::NotFound, format!("There is no room `{room_id}`")));
            }
            if peer(ctx, room, user)?.is_none() {
                return Err(app_error(ErrorCode::NotInRoom, "Join the room to see its peers"));
            }
            let peers = peers(ctx, room, MAX_CLASS_PEERS)?;
            Ok(Value::Array(peers.iter().map(document_value).collect()))
        }))?;
    Ok(())
}
