//! WebRTC signaling through the database: a peer inserts offers, answers and ICE candidates addressed
//! to another peer of the room; the other peer's live `signaling:inboxFor` query delivers them. Messages
//! expire after `SIGNALING_MESSAGE_TTL` and an hourly cron purges them.

use std::time::Duration;

use livebase_functions::{
    ActionCtx, CronSchedule, Function, LogLevel, Registry, RegistryError, from_args, object_validator,
};
use livebase_query::Query;
use livebase_value::{Object, ObjectField, Validator, Value, encode_key_value};
use serde::Deserialize;

use crate::error::{ErrorCode, app_error};
use crate::fields::{document_value, validated_id};
use crate::limits::{
    MAX_INBOX_MESSAGES, MAX_PURGED_PER_RUN, MAX_SIGNALING_PAYLOAD_BYTES, PURGE_INTERVAL, SIGNALING_MESSAGE_TTL,
};
use crate::rooms::peer;
use crate::turn::{TurnProvider, ice_servers_from_response, stun_only};
use crate::users::current_user;

/// The name of the cron that runs `signaling:purgeExpired` every `PURGE_INTERVAL`.
pub const PURGE_EXPIRED_CRON: &str = "purge expired signaling messages";

const MESSAGE_TYPES: [&str; 3] = ["offer", "answer", "ice"];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendArgs {
    room_id: String,
    to_user_id: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboxArgs {
    room_id: String,
    since: f64,
}

fn room_id_field() -> ObjectField {
    ObjectField::required(Validator::Id("rooms".to_owned()))
}

pub(crate) fn register(registry: &mut Registry) -> Result<(), RegistryError> {
    let message_type =
        Validator::Union(MESSAGE_TYPES.iter().map(|kind| Validator::Literal(Value::from(*kind))).collect());
    registry
        .register(Function::mutation(
            "signaling:sendMessage",
            object_validator([
                ("roomId", room_id_field()),
                ("toUserId", ObjectField::required(Validator::Id("users".to_owned()))),
                ("type", ObjectField::required(message_type)),
                ("payload", ObjectField::required(Validator::Any)),
            ]),
            |ctx, mut args| {
                let payload = args.remove("payload").expect("`payload` is a required argument");
                let SendArgs { room_id, to_user_id, kind } = from_args(args)?;
                let from = current_user(ctx)?;
                let room = validated_id(ctx, "rooms", &room_id);
                let to = validated_id(ctx, "users", &to_user_id);
                if to == from {
                    return Err(app_error(
                        ErrorCode::Invalid,
                        "A signaling message goes to another peer, not to oneself",
                    ));
                }
                if ctx.db().get(room)?.is_none() {
                    return Err(app_error(ErrorCode::NotFound, format!("There is no room `{room_id}`")));
                }
                if peer(ctx, room, from)?.is_none() {
                    return Err(app_error(ErrorCode::NotInRoom, "Join the room before sending signaling messages"));
                }
                if peer(ctx, room, to)?.is_none() {
                    return Err(app_error(
                        ErrorCode::RecipientNotInRoom,
                        format!("User `{to_user_id}` is not in this room"),
                    ));
                }
                let mut encoded = Vec::new();
                encode_key_value(&mut encoded, Some(&payload));
                if encoded.len() > MAX_SIGNALING_PAYLOAD_BYTES {
                    return Err(app_error(
                        ErrorCode::Invalid,
                        format!(
                            "The payload has {} bytes, more than the {MAX_SIGNALING_PAYLOAD_BYTES} allowed \
                             (MAX_SIGNALING_PAYLOAD_BYTES)",
                            encoded.len()
                        ),
                    ));
                }
                let message = Object::from([
                    ("roomId".to_owned(), Value::String(room.encode())),
                    ("fromUserId".to_owned(), Value::String(from.encode())),
                    ("toUserId".to_owned(), Value::String(to.encode())),
                    ("type".to_owned(), Value::String(kind)),
                    ("payload".to_owned(), payload),
                    ("expiresAt".to_owned(), Value::Float64(ctx.now() + SIGNALING_MESSAGE_TTL.as_secs_f64() * 1_000.0)),
                ]);
                Ok(Value::String(ctx.db().insert("signalingMessages", message)?.encode()))
            },
        ))?
        // Oldest first, at most `MAX_INBOX_MESSAGES`: a client keeps the `_creationTime` of the last
        // message it handled as its next `since`.
        .register(Function::query(
            "signaling:inboxFor",
            object_validator([("roomId", room_id_field()), ("since", ObjectField::required(Validator::Float64))]),
            |ctx, args| {
                let InboxArgs { room_id, since } = from_args(args)?;
                let me = current_user(ctx)?;
                let room = validated_id(ctx, "rooms", &room_id);
                let inbox = Query::table("signalingMessages").with_index("by_room_and_to_and_creation", |q| {
                    q.eq("roomId", room.encode()).eq("toUserId", me.encode()).gt("_creationTime", since)
                });
                let messages = ctx.db().query(inbox).take(MAX_INBOX_MESSAGES)?;
                Ok(Value::Array(messages.iter().map(document_value).collect()))
            },
        ))?
        .register(
            Function::mutation("signaling:purgeExpired", object_validator([]), |ctx, _args| {
                let now = ctx.now();
                let expired = Query::table("signalingMessages").with_index("by_expires", |q| q.lte("expiresAt", now));
                // One more than is deleted, to know whether more remain.
                let expired = ctx.db().query(expired).take(MAX_PURGED_PER_RUN + 1)?;
                let more_remain = expired.len() > MAX_PURGED_PER_RUN;
                for message in expired.iter().take(MAX_PURGED_PER_RUN) {
                    ctx.db().delete(message.id())?;
                }
                if more_remain {
                    ctx.scheduler().run_after(Duration::ZERO, "signaling:purgeExpired", Object::new())?;
                }
                Ok(Value::Float64(expired.len().min(MAX_PURGED_PER_RUN) as f64))
            })
            .internal(),
        )?
        .register(Function::action("signaling:turnConfig", object_validator([]), |ctx, _args| async move {
            // TURN relays cost the deployment bandwidth: only signed-in users get credentials.
            if ctx.auth().get_user_identity().is_none() {
                return Err(app_error(ErrorCode::NotSignedIn, "Sign in first"));
            }
            let Some(provider) = TurnProvider::from_env(|name| ctx.env(name))? else {
                return Ok(stun_only());
            };
            match mint_credentials(&ctx, &provider).await {
                Ok(config) => Ok(config),
                // Peers on most networks still connect through STUN: a provider outage degrades the
                // call rather than failing it.
                Err(why) => {
                    ctx.log(LogLevel::Warn, format!("No TURN credentials, falling back to STUN only: {why}"));
                    Ok(stun_only())
                }
            }
        }))?
        .cron(PURGE_EXPIRED_CRON, CronSchedule::Every(PURGE_INTERVAL), "signaling:purgeExpired", Object::new())?;
    Ok(())
}

async fn mint_credentials(ctx: &ActionCtx, provider: &TurnProvider) -> Result<Value, String> {
    let response = ctx.fetch(provider.request()?).await.map_err(|error| error.to_string())?;
    if !(200..300).contains(&response.status) {
        let excerpt = String::from_utf8_lossy(&response.body[..response.body.len().min(200)]).into_owned();
        return Err(format!("the TURN provider answered {}: {excerpt}", response.status));
    }
    ice_servers_from_response(&response.body)
}
