//! The demo app's functions end to end, in both its implementations (the Rust registry of `demo/src` and
//! the TypeScript `convex/` folder of `examples/piano-mirror-ts`, loaded by `livebase-js`): each run by a
//! real `Runtime` against a real store in a temporary directory, called as signed-in users the way the
//! sync and HTTP layers call them. Every test runs against both (`rust::` and `typescript::`).

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use common::Backend;
use livebase_functions::{CRON_JOBS_TABLE, FunctionError, Identity, JobState, Registry, Runtime, UserIdentity};
use livebase_store::{Document, Schema, Store, StoreConfig};
use livebase_value::{Object, Value, encode_key_value, to_convex_json, to_plain_json};
use piano_mirror::limits::{
    MAX_CENTERS_LISTED, MAX_CLASS_PEERS, MAX_INBOX_MESSAGES, MAX_NAME_CHARS, MAX_PURGED_PER_RUN,
    MAX_SIGNALING_PAYLOAD_BYTES, MAX_SLUG_CHARS, MAX_TITLE_CHARS, MIN_SLUG_CHARS, PURGE_INTERVAL, SEED_CENTERS,
    SEED_STUDENTS_PER_CENTER, SIGNALING_MESSAGE_TTL,
};
use piano_mirror::{
    FALLBACK_STUN_URL, PURGE_EXPIRED_CRON, TURN_API_TOKEN_VAR, TURN_PROVIDER_URL_VAR, TURN_TOKEN_ID_VAR,
};
use serde_json::json;

/// How long a test waits for the scheduler before failing: a guard against hanging, not a pause.
const PATIENCE: Duration = Duration::from_secs(30);

struct Demo {
    backend: Backend,
    runtime: Runtime,
    store: Store,
    _directory: tempfile::TempDir,
}

/// The app's schema and registry (with its cron) in `backend`'s implementation.
fn app(backend: Backend) -> (Schema, Registry) {
    match backend {
        Backend::Rust => (piano_mirror::schema(), piano_mirror::registry().expect("the app's functions register")),
        Backend::TypeScript => {
            let app = livebase_js::App::load(&common::typescript_app(), &livebase_js::default_npm_dir())
                .expect("the app's convex folder loads");
            // `auth.config.ts` reads the site's URL; these tests call functions with identities directly.
            let env = BTreeMap::from([("CONVEX_SITE_URL".to_owned(), "http://127.0.0.1:3211".to_owned())]);
            let config = app.config(&env).expect("schema.ts, crons.ts and auth.config.ts load");
            let mut registry = Registry::new();
            app.register(&mut registry).expect("the app's functions register");
            config.register_crons(&mut registry).expect("the app's cron registers");
            (config.schema.expect("the app has a schema.ts"), registry)
        }
    }
}

async fn demo(backend: Backend) -> Demo {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    let (schema, registry) = app(backend);
    store.apply_schema(&schema).await.expect("the app's schema applies");
    let runtime = Runtime::new(store.clone(), registry);
    Demo { backend, runtime, store, _directory: directory }
}

fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

fn now_millis() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1_000.0
}

/// A signed-in user: their `users` id and the identity a token with that subject gives.
struct User {
    id: String,
    identity: Identity,
}

/// The identity of a verified token with subject `subject`, as the JWT provider will produce it.
fn identity(subject: &str) -> Identity {
    Identity::User(UserIdentity {
        token_identifier: format!("https://livebase.test|{subject}"),
        subject: subject.to_owned(),
        issuer: "https://livebase.test".to_owned(),
        claims: Object::new(),
    })
}

impl Backend {
    /// The bytes a signaling message's payload counts for: the Rust app measures the store's encoding
    /// of the value, the TypeScript one the JSON of `convexToJson` (what a Convex app can measure).
    fn payload_bytes(self, payload: &Value) -> usize {
        match self {
            Backend::Rust => {
                let mut encoded = Vec::new();
                encode_key_value(&mut encoded, Some(payload));
                encoded.len()
            }
            Backend::TypeScript => to_convex_json(payload).to_string().len(),
        }
    }
}

impl Demo {
    async fn mutation(&self, path: &str, args: Object, identity: &Identity) -> Result<Value, FunctionError> {
        self.runtime.run_mutation(path, args, identity).await.result
    }

    fn query(&self, path: &str, args: Object, identity: &Identity) -> Result<Value, FunctionError> {
        self.runtime.run_query(path, args, identity, None, None).result
    }

    async fn sign_in(&self, name: &str) -> User {
        let id = self.mutation("users:signIn", object(&[("name", Value::from(name))]), &Identity::System).await;
        let Ok(Value::String(id)) = id else { panic!("signing in returns the user's id, not {id:?}") };
        User { identity: identity(&id), id }
    }

    async fn create_room(&self, user: &User, slug: &str, kind: &str) -> Result<Value, FunctionError> {
        let args = object(&[("slug", Value::from(slug)), ("kind", Value::from(kind))]);
        self.mutation("rooms:create", args, &user.identity).await
    }

    async fn join(&self, user: &User, slug: &str) -> Result<Value, FunctionError> {
        self.mutation("rooms:join", object(&[("slug", Value::from(slug))]), &user.identity).await
    }

    async fn leave(&self, user: &User, room: &Value) -> Result<Value, FunctionError> {
        self.mutation("rooms:leave", object(&[("roomId", room.clone())]), &user.identity).await
    }

    fn peers(&self, user: &User, room: &Value) -> Result<Vec<Object>, FunctionError> {
        self.query("rooms:peers", object(&[("roomId", room.clone())]), &user.identity).map(objects)
    }

    async fn send(
        &self,
        from: &User,
        room: &Value,
        to: &str,
        kind: &str,
        payload: Value,
    ) -> Result<Value, FunctionError> {
        let args = object(&[
            ("roomId", room.clone()),
            ("toUserId", Value::from(to)),
            ("type", Value::from(kind)),
            ("payload", payload),
        ]);
        self.mutation("signaling:sendMessage", args, &from.identity).await
    }

    fn inbox(&self, user: &User, room: &Value, since: f64) -> Result<Vec<Object>, FunctionError> {
        let args = object(&[("roomId", room.clone()), ("since", Value::Float64(since))]);
        self.query("signaling:inboxFor", args, &user.identity).map(objects)
    }

    fn documents(&self, table: &str) -> Vec<Arc<Document>> {
        self.store.snapshot().documents(table)
    }

    async fn purge(&self) -> Value {
        self.mutation("signaling:purgeExpired", Object::new(), &Identity::System).await.expect("the purge commits")
    }

    /// A room of `one-on-one` Ada (host) and Ben, and Cleo, signed in but outside it.
    async fn room_of_two(&self) -> (Value, User, User, User) {
        let (ada, ben, cleo) = (self.sign_in("Ada").await, self.sign_in("Ben").await, self.sign_in("Cleo").await);
        let room = self.create_room(&ada, "DUO123", "one-on-one").await.unwrap();
        assert_eq!(self.join(&ben, "DUO123").await.unwrap(), room);
        (room, ada, ben, cleo)
    }
}

fn objects(value: Value) -> Vec<Object> {
    let Value::Array(items) = value else { panic!("an array, not {value:?}") };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(fields) => fields,
            other => panic!("an object, not {other:?}"),
        })
        .collect()
}

fn string(fields: &Object, field: &str) -> String {
    match fields.get(field) {
        Some(Value::String(value)) => value.clone(),
        other => panic!("`{field}` is a string, not {other:?}"),
    }
}

fn number(fields: &Object, field: &str) -> f64 {
    match fields.get(field) {
        Some(Value::Float64(value)) => *value,
        other => panic!("`{field}` is a number, not {other:?}"),
    }
}

/// The code of an app error (`data.code`) and its message.
fn code<T: std::fmt::Debug>(result: Result<T, FunctionError>) -> (String, String) {
    let error = result.expect_err("the call is refused");
    let Some(Value::Object(data)) = error.data() else { panic!("an app error carries data: {error:?}") };
    assert_eq!(data["message"], Value::from(error.client_message()), "the data repeats the message");
    (string(data, "code"), error.client_message().to_owned())
}

// ---- users ----

async fn signing_in_by_name_finds_or_creates_the_user_and_identities_must_name_one(backend: Backend) {
    let demo = demo(backend).await;
    let ada = demo.sign_in("Ada").await;
    assert_eq!(demo.sign_in("  Ada ").await.id, ada.id, "the same name is the same user");
    assert_ne!(demo.sign_in("Ben").await.id, ada.id);
    let me = demo.query("users:me", Object::new(), &ada.identity).unwrap();
    assert!(matches!(&me, Value::Object(user) if user["name"] == Value::from("Ada")), "{me:?}");
    assert_eq!(demo.query("users:me", Object::new(), &Identity::Unauthenticated), Ok(Value::Null));

    let blank = demo.mutation("users:signIn", object(&[("name", Value::from("  "))]), &Identity::System).await;
    assert_eq!(code(blank).0, "INVALID");
    let from_client = demo.mutation("users:signIn", object(&[("name", Value::from("Eve"))]), &ada.identity).await;
    assert!(from_client.unwrap_err().to_string().contains("Could not find public function"), "internal only");

    // A token whose subject is no user of the app (another table's id, garbage) signs nobody in.
    let center = demo.mutation("centers:create", object(&[("name", Value::from("C"))]), &ada.identity).await.unwrap();
    let Value::String(center) = center else { panic!() };
    for subject in [center.as_str(), "not-an-id"] {
        let refused = demo.query("users:me", Object::new(), &identity(subject));
        assert_eq!(code(refused).0, "NOT_SIGNED_IN", "subject {subject}");
    }
}

// ---- centers and students ----

async fn create_student(demo: &Demo, center: &Value, name: &str, status: &str) -> Result<Value, FunctionError> {
    let args = object(&[("centerId", center.clone()), ("name", Value::from(name)), ("status", Value::from(status))]);
    demo.mutation("students:create", args, &Identity::Unauthenticated).await
}

/// Every page of `students:listByCenter`, `page_size` at a time: the ids of each page.
fn pages(demo: &Demo, center: &Value, page_size: f64) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let options = object(&[("numItems", Value::Float64(page_size)), ("cursor", cursor)]);
        let args = object(&[("centerId", center.clone()), ("paginationOpts", Value::Object(options))]);
        let Ok(Value::Object(page)) = demo.query("students:listByCenter", args, &Identity::Unauthenticated) else {
            panic!("a page")
        };
        let Value::Array(students) = &page["page"] else { panic!("a page holds an array") };
        pages.push(
            students
                .iter()
                .map(|student| match student {
                    Value::Object(student) => string(student, "_id"),
                    other => panic!("{other:?}"),
                })
                .collect(),
        );
        assert!(pages.len() <= 100, "pagination ends");
        if page["isDone"] == Value::Boolean(true) {
            return pages;
        }
        cursor = page["continueCursor"].clone();
    }
}

async fn students_of_a_center_are_listed_in_pages_newest_first_within_a_status(backend: Backend) {
    let demo = demo(backend).await;
    let create_center = |name: &str| {
        demo.mutation("centers:create", object(&[("name", Value::from(name))]), &Identity::Unauthenticated)
    };
    let (center, other) = (create_center("Riverside").await.unwrap(), create_center("Harbor").await.unwrap());
    let mut active = Vec::new();
    let mut paused = Vec::new();
    for n in 0..7 {
        let status = if n % 3 == 2 { "paused" } else { "active" };
        let Value::String(id) = create_student(&demo, &center, &format!("Student {n}"), status).await.unwrap() else {
            panic!("an id")
        };
        if status == "paused" {
            paused.push(id)
        } else {
            active.push(id)
        }
        create_student(&demo, &other, &format!("Elsewhere {n}"), "active").await.unwrap();
    }
    // The index orders by status, then creation time: descending, "paused" comes first, and within a
    // status the newest comes first.
    let expected: Vec<String> = paused.iter().rev().chain(active.iter().rev()).cloned().collect();
    let listed_pages = pages(&demo, &center, 3.0);
    assert!(listed_pages.iter().all(|page| page.len() <= 3), "{listed_pages:?}");
    assert_eq!(listed_pages.concat(), expected, "no gaps, no repeats, no students of the other center");

    let only_active = demo
        .mutation("centers:create", object(&[("name", Value::from("Solo"))]), &Identity::Unauthenticated)
        .await
        .unwrap();
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(create_student(&demo, &only_active, &format!("S{n}"), "active").await.unwrap());
    }
    let newest_first: Vec<Value> = created.into_iter().rev().collect();
    let listed: Vec<Value> = pages(&demo, &only_active, 2.0).concat().into_iter().map(Value::String).collect();
    assert_eq!(listed, newest_first);
}

async fn students_are_read_created_and_removed_and_bad_input_changes_nothing(backend: Backend) {
    let demo = demo(backend).await;
    let anyone = Identity::Unauthenticated;
    let longest = "n".repeat(MAX_NAME_CHARS);
    let center =
        demo.mutation("centers:create", object(&[("name", Value::from(longest.as_str()))]), &anyone).await.unwrap();
    let too_long = format!("{longest}n");
    let refused = demo.mutation("centers:create", object(&[("name", Value::from(too_long.as_str()))]), &anyone).await;
    assert_eq!(code(refused).0, "INVALID");
    assert_eq!(demo.query("centers:list", Object::new(), &anyone).map(objects).unwrap().len(), 1);
    demo.store
        .transact(|tx| {
            for n in 0..MAX_CENTERS_LISTED {
                tx.insert("centers", object(&[("name", Value::from(format!("Center {n}")))]))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let listed = demo.query("centers:list", Object::new(), &anyone).map(objects).unwrap();
    assert_eq!(listed.len(), MAX_CENTERS_LISTED, "one center more than the limit, the oldest listed");
    assert_eq!(listed[0]["_id"], center);

    let student = create_student(&demo, &center, "Ada", "active").await.unwrap();
    let got = demo.query("students:get", object(&[("id", student.clone())]), &anyone).unwrap();
    let Value::Object(got) = got else { panic!("a student, not {got:?}") };
    assert_eq!((string(&got, "name"), string(&got, "status")), ("Ada".to_owned(), "active".to_owned()));
    assert_eq!(got["centerId"], center);

    assert_eq!(code(create_student(&demo, &center, " ", "active").await).0, "INVALID");
    let bad_status = create_student(&demo, &center, "Ben", "expelled").await.unwrap_err();
    assert!(bad_status.to_string().contains("expelled"), "{bad_status}");
    let wrong_table = create_student(&demo, &student, "Ben", "active").await.unwrap_err();
    assert!(wrong_table.to_string().contains("centers"), "{wrong_table}");
    assert_eq!(demo.documents("students").len(), 1, "refused calls wrote nothing");

    let remove = || demo.mutation("students:remove", object(&[("id", student.clone())]), &anyone);
    assert_eq!(remove().await, Ok(Value::Null));
    assert_eq!(demo.query("students:get", object(&[("id", student.clone())]), &anyone), Ok(Value::Null));
    assert_eq!(code(remove().await).0, "NOT_FOUND");
    // A center id that no longer names a center.
    let gone = demo.mutation("centers:create", object(&[("name", Value::from("Gone"))]), &anyone).await.unwrap();
    let Value::String(gone_id) = &gone else { panic!() };
    let gone_id = livebase_value::DocumentId::decode(gone_id).unwrap();
    demo.store.transact(|tx| tx.delete(gone_id)).await.unwrap();
    assert_eq!(code(create_student(&demo, &gone, "Cleo", "active").await).0, "NOT_FOUND");
}

// ---- rooms ----

async fn rooms_are_created_joined_and_list_their_peers(backend: Backend) {
    let demo = demo(backend).await;
    let (ada, ben, cleo) = (demo.sign_in("Ada").await, demo.sign_in("Ben").await, demo.sign_in("Cleo").await);
    let args = object(&[("slug", Value::from(" abc123 ")), ("displayName", Value::from("Teacher Ada"))]);
    let room = demo.mutation("rooms:create", args, &ada.identity).await.unwrap();
    assert_eq!(demo.join(&ben, "ABC123").await, Ok(room.clone()), "codes are case-insensitive");
    assert_eq!(demo.join(&ben, "abc123").await, Ok(room.clone()), "joining again is the same peer");

    let peers = demo.peers(&ada, &room).unwrap();
    let names: Vec<(String, String)> =
        peers.iter().map(|peer| (string(peer, "userId"), string(peer, "displayName"))).collect();
    assert_eq!(names, [(ada.id.clone(), "Teacher Ada".to_owned()), (ben.id.clone(), "Ben".to_owned())]);
    assert_eq!(demo.peers(&ben, &room).unwrap(), peers, "every peer sees the same list");

    let (full, message) = code(demo.join(&cleo, "ABC123").await);
    assert_eq!(full, "ROOM_FULL", "a one-on-one room holds two: {message}");
    assert_eq!(code(demo.peers(&cleo, &room)).0, "NOT_IN_ROOM");
    assert_eq!(code(demo.join(&cleo, "NOSUCH").await).0, "NOT_FOUND");
    assert_eq!(code(demo.create_room(&ada, "ABC123", "class").await).0, "SLUG_TAKEN");
    let anonymous =
        demo.mutation("rooms:create", object(&[("slug", Value::from("ANON1"))]), &Identity::Unauthenticated);
    assert_eq!(code(anonymous.await).0, "NOT_SIGNED_IN");
    let bad_kind = demo.create_room(&ada, "KIND01", "lecture").await.unwrap_err();
    assert!(bad_kind.to_string().contains("lecture"), "{bad_kind}");
    assert_eq!(demo.documents("rooms").len(), 1, "refused calls wrote nothing");
    assert_eq!(demo.documents("roomPeers").len(), 2);

    // Renaming through a second join.
    let rename = object(&[("slug", Value::from("ABC123")), ("displayName", Value::from("Benjamin"))]);
    demo.mutation("rooms:join", rename, &ben.identity).await.unwrap();
    assert_eq!(string(&demo.peers(&ben, &room).unwrap()[1], "displayName"), "Benjamin");
}

async fn class_rooms_hold_up_to_their_capacity(backend: Backend) {
    let demo = demo(backend).await;
    let host = demo.sign_in("Host").await;
    let room = demo.create_room(&host, "CLASS1", "class").await.unwrap();
    for n in 1..MAX_CLASS_PEERS {
        assert_eq!(demo.join(&demo.sign_in(&format!("Pupil {n}")).await, "CLASS1").await, Ok(room.clone()));
    }
    assert_eq!(demo.peers(&host, &room).unwrap().len(), MAX_CLASS_PEERS);
    let late = demo.sign_in("Late").await;
    assert_eq!(code(demo.join(&late, "CLASS1").await).0, "ROOM_FULL");
}

async fn slugs_are_unique_among_open_rooms_and_free_again_once_a_room_closes(backend: Backend) {
    let demo = demo(backend).await;
    let (ada, ben) = (demo.sign_in("Ada").await, demo.sign_in("Ben").await);
    let first = demo.create_room(&ada, "PIANO1", "one-on-one").await.unwrap();
    assert_eq!(code(demo.create_room(&ben, "piano1", "class").await).0, "SLUG_TAKEN");
    demo.join(&ben, "PIANO1").await.unwrap();

    demo.leave(&ada, &first).await.unwrap();
    assert_eq!(code(demo.create_room(&ben, "PIANO1", "class").await).0, "SLUG_TAKEN", "Ben keeps it open");
    assert_eq!(demo.leave(&ada, &first).await, Ok(Value::Null), "leaving twice does nothing");
    demo.leave(&ben, &first).await.unwrap();
    assert_eq!(code(demo.join(&ada, "PIANO1").await).0, "NOT_FOUND", "the last to leave closed the room");

    // Two hosts racing for one code: the transactions are serializable, so exactly one gets it.
    let (first_try, second_try) =
        tokio::join!(demo.create_room(&ada, "RACE01", "class"), demo.create_room(&ben, "RACE01", "class"));
    assert_ne!(first_try.is_ok(), second_try.is_ok(), "{first_try:?} {second_try:?}");
    assert_eq!(code(first_try.and(second_try)).0, "SLUG_TAKEN");

    let second = demo.create_room(&ben, "PIANO1", "class").await.unwrap();
    assert_ne!(second, first);
    assert_eq!(demo.join(&ada, "PIANO1").await, Ok(second));

    for slug in ["A".repeat(MIN_SLUG_CHARS), "B".repeat(MAX_SLUG_CHARS)] {
        assert!(demo.create_room(&ada, &slug, "class").await.is_ok(), "{slug}");
    }
    for slug in ["A".repeat(MIN_SLUG_CHARS - 1), "B".repeat(MAX_SLUG_CHARS + 1), "AB CD".to_owned(), "ÄBC12".to_owned()]
    {
        let (invalid, message) = code(demo.create_room(&ada, &slug, "class").await);
        assert_eq!(invalid, "INVALID", "{slug}");
        assert!(message.contains("letters and digits"), "{message}");
    }
}

// ---- signaling ----

async fn signaling_messages_need_the_sender_and_the_recipient_in_the_room(backend: Backend) {
    let demo = demo(backend).await;
    let (room, ada, ben, cleo) = demo.room_of_two().await;
    let offer = || Value::Object(object(&[("sdp", Value::from("v=0 ..."))]));

    let (not_in_room, message) = code(demo.send(&cleo, &room, &ada.id, "offer", offer()).await);
    assert_eq!(not_in_room, "NOT_IN_ROOM", "{message}");
    let (recipient, message) = code(demo.send(&ada, &room, &cleo.id, "offer", offer()).await);
    assert_eq!(recipient, "RECIPIENT_NOT_IN_ROOM");
    assert!(message.contains(&cleo.id), "{message}");
    assert_eq!(code(demo.send(&ada, &room, &ada.id, "offer", offer()).await).0, "INVALID");
    let anonymous = User { id: String::new(), identity: Identity::Unauthenticated };
    assert_eq!(code(demo.send(&anonymous, &room, &ben.id, "offer", offer()).await).0, "NOT_SIGNED_IN");
    let bad_type = demo.send(&ada, &room, &ben.id, "bye", offer()).await.unwrap_err();
    assert!(bad_type.to_string().contains("bye"), "{bad_type}");

    // The payload limit, at its boundary: a string payload measures a fixed overhead plus its bytes.
    let encoded_len = |payload: &Value| demo.backend.payload_bytes(payload);
    let overhead = encoded_len(&Value::from(""));
    let at_limit = Value::String("x".repeat(MAX_SIGNALING_PAYLOAD_BYTES - overhead));
    assert_eq!(encoded_len(&at_limit), MAX_SIGNALING_PAYLOAD_BYTES);
    let over = Value::String("x".repeat(MAX_SIGNALING_PAYLOAD_BYTES - overhead + 1));
    let (too_big, message) = code(demo.send(&ada, &room, &ben.id, "offer", over).await);
    assert_eq!(too_big, "INVALID");
    assert!(message.contains("MAX_SIGNALING_PAYLOAD_BYTES"), "{message}");
    assert!(demo.documents("signalingMessages").is_empty(), "refused messages were not written");

    assert!(demo.send(&ada, &room, &ben.id, "offer", at_limit).await.is_ok());
    // After Ben leaves, he is no longer anyone's recipient.
    demo.leave(&ben, &room).await.unwrap();
    assert_eq!(code(demo.send(&ada, &room, &ben.id, "ice", offer()).await).0, "RECIPIENT_NOT_IN_ROOM");
    assert_eq!(demo.documents("signalingMessages").len(), 1);
}

async fn the_inbox_holds_the_messages_to_me_in_the_room_since_a_time(backend: Backend) {
    let demo = demo(backend).await;
    let (ada, ben, cleo) = (demo.sign_in("Ada").await, demo.sign_in("Ben").await, demo.sign_in("Cleo").await);
    let room = demo.create_room(&ada, "TRIO01", "class").await.unwrap();
    demo.join(&ben, "TRIO01").await.unwrap();
    demo.join(&cleo, "TRIO01").await.unwrap();
    let other_room = demo.create_room(&ada, "OTHER1", "one-on-one").await.unwrap();
    demo.join(&ben, "OTHER1").await.unwrap();

    // Whole milliseconds: JavaScript's `Date.now()` (the TypeScript backend's clock) drops the fraction,
    // so a send within this same millisecond reads a time below the fractional `now_millis()`.
    let before = now_millis().floor();
    let sdp = Value::Object(object(&[("type", Value::from("offer")), ("sdp", Value::from("v=0"))]));
    let offer = demo.send(&ada, &room, &ben.id, "offer", sdp.clone()).await.unwrap();
    demo.send(&ben, &room, &ada.id, "answer", Value::from("answer sdp")).await.unwrap();
    demo.send(&ada, &room, &cleo.id, "ice", Value::from("candidate for Cleo")).await.unwrap();
    demo.send(&ada, &other_room, &ben.id, "offer", Value::from("another room")).await.unwrap();

    let inbox = demo.inbox(&ben, &room, 0.0).unwrap();
    assert_eq!(inbox.len(), 1, "only Ben's messages of this room: {inbox:?}");
    let message = &inbox[0];
    assert_eq!(message["_id"], offer);
    assert_eq!((string(message, "fromUserId"), string(message, "toUserId")), (ada.id.clone(), ben.id.clone()));
    assert_eq!((string(message, "type"), &message["payload"]), ("offer".to_owned(), &sdp));
    assert!(number(message, "expiresAt") >= before + SIGNALING_MESSAGE_TTL.as_secs_f64() * 1_000.0);

    let seen = number(message, "_creationTime");
    assert!(demo.inbox(&ben, &room, seen).unwrap().is_empty(), "`since` is exclusive");
    let ice = demo.send(&ada, &room, &ben.id, "ice", Value::from("candidate")).await.unwrap();
    let newer: Vec<Value> = demo.inbox(&ben, &room, seen).unwrap().iter().map(|m| m["_id"].clone()).collect();
    assert_eq!(newer, std::slice::from_ref(&ice));
    let all: Vec<Value> = demo.inbox(&ben, &room, 0.0).unwrap().iter().map(|m| m["_id"].clone()).collect();
    assert_eq!(all, [offer, ice], "oldest first");
    assert_eq!(
        code(demo.inbox(&User { id: String::new(), identity: Identity::Unauthenticated }, &room, 0.0)).0,
        "NOT_SIGNED_IN"
    );
}

async fn the_inbox_returns_at_most_its_limit_oldest_first(backend: Backend) {
    let demo = demo(backend).await;
    let (room, ada, ben, _) = demo.room_of_two().await;
    let message = |n: usize| {
        object(&[
            ("roomId", room.clone()),
            ("fromUserId", Value::from(ada.id.as_str())),
            ("toUserId", Value::from(ben.id.as_str())),
            ("type", Value::from("ice")),
            ("payload", Value::Float64(n as f64)),
            ("expiresAt", Value::Float64(now_millis() + 60_000.0)),
        ])
    };
    demo.store
        .transact(|tx| {
            for n in 0..=MAX_INBOX_MESSAGES {
                tx.insert("signalingMessages", message(n))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let inbox = demo.inbox(&ben, &room, 0.0).unwrap();
    let payloads: Vec<Value> = inbox.iter().map(|message| message["payload"].clone()).collect();
    let expected: Vec<Value> = (0..MAX_INBOX_MESSAGES).map(|n| Value::Float64(n as f64)).collect();
    assert_eq!(payloads, expected);
    let rest = demo.inbox(&ben, &room, number(&inbox[MAX_INBOX_MESSAGES - 1], "_creationTime")).unwrap();
    assert_eq!(
        rest.iter().map(|message| message["payload"].clone()).collect::<Vec<_>>(),
        [Value::Float64(MAX_INBOX_MESSAGES as f64)]
    );
}

/// Inserts signaling messages from the host of `room` to its guest, expiring at `expires_at`
/// (milliseconds), straight into the store.
async fn insert_messages(demo: &Demo, (room, from, to): (&Value, &User, &User), expires_at: &[f64]) -> Vec<String> {
    let (ids, _) = demo
        .store
        .transact(|tx| {
            let mut ids = Vec::new();
            for (n, expires_at) in expires_at.iter().enumerate() {
                let message = object(&[
                    ("roomId", room.clone()),
                    ("fromUserId", Value::from(from.id.as_str())),
                    ("toUserId", Value::from(to.id.as_str())),
                    ("type", Value::from("ice")),
                    ("payload", Value::Float64(n as f64)),
                    ("expiresAt", Value::Float64(*expires_at)),
                ]);
                ids.push(tx.insert("signalingMessages", message)?.encode());
            }
            Ok(ids)
        })
        .await
        .unwrap();
    ids
}

fn message_ids(demo: &Demo) -> Vec<String> {
    let mut ids: Vec<String> =
        demo.documents("signalingMessages").iter().map(|message| message.id().encode()).collect();
    ids.sort();
    ids
}

async fn purging_deletes_exactly_the_expired_messages(backend: Backend) {
    let demo = demo(backend).await;
    let (room, ada, ben, _) = demo.room_of_two().await;
    let peers = (&room, &ada, &ben);
    let now = now_millis();
    let hour = 3_600_000.0;
    let expired = insert_messages(&demo, peers, &[now - 2.0 * hour, now - 1.0, 0.0]).await;
    let mut live = insert_messages(&demo, peers, &[now + hour, now + 2.0 * hour]).await;
    assert_eq!(expired.len() + live.len(), 5);

    assert_eq!(demo.purge().await, Value::Float64(3.0));
    live.sort();
    assert_eq!(message_ids(&demo), live, "the expired ones went, the live ones stayed");
    assert_eq!(demo.purge().await, Value::Float64(0.0), "nothing more to purge");
    assert_eq!(message_ids(&demo), live);
    assert!(demo.runtime.scheduled_jobs().is_empty(), "no backlog, no follow-up run");

    let from_client = demo.mutation("signaling:purgeExpired", Object::new(), &Identity::Unauthenticated).await;
    assert!(from_client.unwrap_err().to_string().contains("Could not find public function"), "internal only");
}

async fn purging_a_backlog_deletes_a_bounded_batch_and_runs_again_until_done(backend: Backend) {
    let demo = demo(backend).await;
    let (room, ada, ben, _) = demo.room_of_two().await;
    let peers = (&room, &ada, &ben);
    let past = now_millis() - 1_000.0;
    // Exactly the limit: one run, no follow-up.
    insert_messages(&demo, peers, &vec![past; MAX_PURGED_PER_RUN]).await;
    assert_eq!(demo.purge().await, Value::Float64(MAX_PURGED_PER_RUN as f64));
    assert!(demo.documents("signalingMessages").is_empty());
    assert!(demo.runtime.scheduled_jobs().is_empty());

    // One more than the limit: the run deletes the limit and schedules itself, and the scheduler's run
    // deletes the rest.
    insert_messages(&demo, peers, &vec![past; MAX_PURGED_PER_RUN + 1]).await;
    let mut changes = demo.store.subscribe();
    let scheduler = demo.runtime.start_scheduler().await.unwrap();
    assert_eq!(demo.purge().await, Value::Float64(MAX_PURGED_PER_RUN as f64));
    let follow_up_done = |demo: &Demo| {
        let jobs = demo.runtime.scheduled_jobs();
        jobs.len() == 1 && jobs[0].state == JobState::Success
    };
    tokio::time::timeout(PATIENCE, async {
        while !follow_up_done(&demo) {
            changes.recv().await.expect("the store runs");
        }
    })
    .await
    .expect("the follow-up run finishes");
    let jobs = demo.runtime.scheduled_jobs();
    assert_eq!(jobs[0].name, "signaling:purgeExpired");
    assert!(demo.documents("signalingMessages").is_empty(), "the follow-up run deleted the last one");
    scheduler.stop().await;
}

async fn the_purge_cron_is_registered_to_run_hourly(backend: Backend) {
    let demo = demo(backend).await;
    let before = now_millis();
    let scheduler = demo.runtime.start_scheduler().await.unwrap();
    let after = now_millis();
    let crons = demo.documents(CRON_JOBS_TABLE);
    assert_eq!(crons.len(), 1, "{crons:?}");
    let cron = crons[0].object();
    assert_eq!(string(cron, "name"), PURGE_EXPIRED_CRON);
    assert!(string(cron, "spec").contains("signaling:purgeExpired"), "{cron:?}");
    assert_eq!(PURGE_INTERVAL, Duration::from_secs(3_600));
    let next_run = number(cron, "nextRun");
    let hour = PURGE_INTERVAL.as_secs_f64() * 1_000.0;
    assert!((before + hour..=after + hour).contains(&next_run), "first run one hour after start: {next_run}");
    scheduler.stop().await;
}

// ---- TURN ----

/// A fake TURN provider on loopback answering Cloudflare's `credentials/generate` for key `key-1` and
/// API token `secret`; returns its base URL.
async fn fake_turn_provider() -> String {
    let generate = |headers: HeaderMap, body: Bytes| async move {
        let authorized = headers.get("authorization").is_some_and(|value| value == "Bearer secret");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (status, answer) = if authorized && body == json!({"ttl": 86_400}) {
            let servers = json!({"iceServers": {
                "urls": ["stun:stun.cloudflare.com:3478", "turn:turn.cloudflare.com:3478?transport=udp"],
                "username": "minted-user",
                "credential": "minted-credential",
            }});
            (StatusCode::CREATED, servers)
        } else {
            (StatusCode::UNAUTHORIZED, json!({"errors": ["bad token or body"]}))
        };
        (status, [(header::CONTENT_TYPE, "application/json")], answer.to_string())
    };
    let app = Router::new().route("/v1/turn/keys/key-1/credentials/generate", post(generate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake provider serves") });
    url
}

async fn turn_config_is_stun_only_without_a_provider_and_the_providers_servers_with_one(backend: Backend) {
    let demo = demo(backend).await;
    let ada = demo.sign_in("Ada").await;
    let turn_config = || async { demo.runtime.run_action("signaling:turnConfig", Object::new(), &ada.identity).await };
    let plain = |value: Value| to_plain_json(&value);
    let stun_only = json!({"iceServers": [{"urls": [FALLBACK_STUN_URL]}]});

    assert_eq!(turn_config().await.result.map(plain), Ok(stun_only.clone()));
    demo.runtime.set_env(TURN_TOKEN_ID_VAR, "key-1").await.unwrap();
    assert_eq!(turn_config().await.result.map(plain), Ok(stun_only.clone()), "a token id alone is no provider");

    demo.runtime.set_env(TURN_API_TOKEN_VAR, "secret").await.unwrap();
    demo.runtime.set_env(TURN_PROVIDER_URL_VAR, &fake_turn_provider().await).await.unwrap();
    let minted = turn_config().await;
    let expected = json!({"iceServers": [{
        "urls": ["stun:stun.cloudflare.com:3478", "turn:turn.cloudflare.com:3478?transport=udp"],
        "username": "minted-user",
        "credential": "minted-credential",
    }]});
    assert_eq!(minted.result.map(plain), Ok(expected));
    assert!(minted.log_lines.is_empty(), "{:?}", minted.log_lines);

    // A provider refusing the call degrades to STUN only, and says why in the call's log.
    demo.runtime.set_env(TURN_API_TOKEN_VAR, "revoked").await.unwrap();
    let refused = turn_config().await;
    assert_eq!(refused.result.map(plain), Ok(stun_only));
    let lines: Vec<String> = refused.log_lines.iter().map(ToString::to_string).collect();
    assert!(lines.len() == 1 && lines[0].contains("answered 401"), "{lines:?}");

    let anonymous = demo.runtime.run_action("signaling:turnConfig", Object::new(), &Identity::Unauthenticated).await;
    assert_eq!(code(anonymous.result).0, "NOT_SIGNED_IN");
}

// ---- runs ----

async fn practice_runs_are_created_by_signed_in_users(backend: Backend) {
    let demo = demo(backend).await;
    let ada = demo.sign_in("Ada").await;
    let demo = &demo;
    let create = |title: String, identity: Identity| async move {
        demo.mutation("runs:create", object(&[("title", Value::String(title))]), &identity).await
    };
    let run = create("Für Elise, slowly".to_owned(), ada.identity.clone()).await.unwrap();
    let runs = demo.documents("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(Value::String(runs[0].id().encode()), run);
    assert_eq!(runs[0].get("userId"), Some(&Value::from(ada.id.as_str())));
    assert!(create("t".repeat(MAX_TITLE_CHARS), ada.identity.clone()).await.is_ok());
    assert_eq!(code(create("t".repeat(MAX_TITLE_CHARS + 1), ada.identity.clone()).await).0, "INVALID");
    assert_eq!(code(create(String::new(), ada.identity.clone()).await).0, "INVALID");
    assert_eq!(code(create("Scales".to_owned(), Identity::Unauthenticated).await).0, "NOT_SIGNED_IN");
    assert_eq!(demo.documents("runs").len(), 2);
}

// ---- seed data ----

/// Every student as `(center name, student name, status)`, sorted.
fn roster(demo: &Demo) -> Vec<(String, String, String)> {
    let snapshot = demo.store.snapshot();
    let mut roster: Vec<_> = snapshot
        .documents("students")
        .iter()
        .map(|student| {
            let Some(Value::String(center)) = student.get("centerId") else { panic!("{student:?}") };
            let center = snapshot.get(livebase_value::DocumentId::decode(center).unwrap()).expect("the center exists");
            let text = |document: &Document, field: &str| string(document.object(), field);
            (text(&center, "name"), text(student, "name"), text(student, "status"))
        })
        .collect();
    roster.sort();
    roster
}

async fn seed_data_is_deterministic_and_written_once(backend: Backend) {
    let (first, second) = (demo(backend).await, demo(backend).await);
    let seeded = piano_mirror::seed_demo_data(&first.runtime).await.unwrap();
    let expected = json!({
        "seeded": true,
        "centers": SEED_CENTERS as f64,
        "students": (SEED_CENTERS * SEED_STUDENTS_PER_CENTER) as f64,
    });
    assert_eq!(to_plain_json(&seeded), expected);
    assert_eq!(first.documents("centers").len(), SEED_CENTERS);
    assert_eq!(first.documents("students").len(), SEED_CENTERS * SEED_STUDENTS_PER_CENTER);

    let again = piano_mirror::seed_demo_data(&first.runtime).await.unwrap();
    assert_eq!(to_plain_json(&again), json!({"seeded": false, "centers": 0.0, "students": 0.0}));
    assert_eq!(first.documents("students").len(), SEED_CENTERS * SEED_STUDENTS_PER_CENTER);

    piano_mirror::seed_demo_data(&second.runtime).await.unwrap();
    let first_roster = roster(&first);
    assert_eq!(first_roster, roster(&second), "the same data on every machine");
    let statuses: std::collections::BTreeSet<&str> =
        first_roster.iter().map(|(_, _, status)| status.as_str()).collect();
    assert_eq!(statuses, piano_mirror::STUDENT_STATUSES.into_iter().collect(), "every status shows up");
    let center = Value::String(first.documents("centers")[0].id().encode());
    assert_eq!(pages(&first, &center, 500.0).concat().len(), SEED_STUDENTS_PER_CENTER);
}

for_both_backends!(
    signing_in_by_name_finds_or_creates_the_user_and_identities_must_name_one,
    students_of_a_center_are_listed_in_pages_newest_first_within_a_status,
    students_are_read_created_and_removed_and_bad_input_changes_nothing,
    rooms_are_created_joined_and_list_their_peers,
    class_rooms_hold_up_to_their_capacity,
    slugs_are_unique_among_open_rooms_and_free_again_once_a_room_closes,
    signaling_messages_need_the_sender_and_the_recipient_in_the_room,
    the_inbox_holds_the_messages_to_me_in_the_room_since_a_time,
    the_inbox_returns_at_most_its_limit_oldest_first,
    purging_deletes_exactly_the_expired_messages,
    purging_a_backlog_deletes_a_bounded_batch_and_runs_again_until_done,
    the_purge_cron_is_registered_to_run_hourly,
    turn_config_is_stun_only_without_a_provider_and_the_providers_servers_with_one,
    practice_runs_are_created_by_signed_in_users,
    seed_data_is_deterministic_and_written_once,
);
