//! Arbitrary input to the parser and the connection: nothing panics, and every rejection is a
//! bounded message that names what is wrong.

use livebase_sync::{
    ClientMessage, Connection, Effect, MAX_ERROR_MESSAGE_CHARS, ParseError, ServerMessage, parse_client_message,
};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// The longest fixed text around a quoted problem in a `ParseError` message.
const MAX_ERROR_FRAME_CHARS: usize = 200;

fn templates() -> Vec<Json> {
    vec![
        json!({"type": "Connect", "sessionId": "6a0f3c1e-2b4d-4e8f-a1b2-c3d4e5f60718", "connectionCount": 0,
               "lastCloseReason": "InitialConnect", "clientTs": 0, "maxObservedTimestamp": "AQAAAAAAAAA="}),
        json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{"n": 1}], "journal": null},
            {"type": "Remove", "queryId": 1}]}),
        json!({"type": "Mutation", "requestId": 0, "udfPath": "messages:send", "args": [{"body": "hi"}]}),
        json!({"type": "Action", "requestId": 1, "udfPath": "a/b:c", "args": [{}], "componentPath": "x"}),
        json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": "jwt"}),
        json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "key", "impersonating": {}}),
        json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "None"}),
        json!({"type": "Event", "eventType": "ClientConnect", "event": {}}),
    ]
}

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_filter_map("finite", |n| serde_json::Number::from_f64(n).map(Json::Number)),
        ".{0,12}".prop_map(Json::from),
        Just(json!({"$integer": "AQAAAAAAAAA="})),
        Just(json!({"$bytes": "!!"})),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map("[a-z$_]{0,5}", inner, 0..4)
                .prop_map(|fields| Json::Object(fields.into_iter().collect())),
        ]
    })
}

/// A valid message with one field replaced, added or removed, at the top or inside the first
/// modification.
fn mutated_message() -> impl Strategy<Value = (Json, String)> {
    let keys = "type|sessionId|connectionCount|lastCloseReason|clientTs|maxObservedTimestamp|baseVersion|newVersion|\
                modifications|queryId|udfPath|args|journal|componentPath|requestId|tokenType|value|impersonating|\
                acting_as|eventType|event|other";
    let keys: Vec<&'static str> = keys.split('|').collect();
    (0..templates().len(), prop::sample::select(keys), prop::option::of(json_value()), any::<bool>()).prop_map(
        |(template, key, value, nested)| {
            let mut message = templates().swap_remove(template);
            let message_type = message["type"].as_str().unwrap().to_owned();
            let target = match message.get_mut("modifications") {
                Some(Json::Array(modifications)) if nested => &mut modifications[0],
                _ => &mut message,
            };
            let fields = target.as_object_mut().unwrap();
            match value {
                Some(value) => fields.insert(key.to_owned(), value),
                None => fields.remove(key),
            };
            (message, message_type)
        },
    )
}

fn check_error(error: &ParseError) {
    let text = error.to_string();
    assert!(!text.is_empty());
    assert!(text.chars().count() <= MAX_ERROR_MESSAGE_CHARS + MAX_ERROR_FRAME_CHARS, "{text}");
    assert!(text.starts_with("The message") || text.starts_with("Invalid "), "{text}");
}

fn check_rejection(effects: &[Effect]) {
    match effects {
        [Effect::Send(ServerMessage::FatalError { error }), Effect::Close { .. }] => assert!(!error.is_empty()),
        [Effect::Close { .. }] => {}
        other => panic!("a rejection is answered and closes the connection: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_rejected_clearly(text in prop_oneof![any::<String>(), "[\\[\\]{}\":,0-9a-zA-Z$ ]{0,40}"]) {
        if let Err(error) = parse_client_message(&text) {
            check_error(&error);
        }
    }

    #[test]
    fn arbitrary_bytes_are_rejected_clearly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Err(error) = parse_client_message(&String::from_utf8_lossy(&bytes)) {
            check_error(&error);
        }
    }

    #[test]
    fn damaged_messages_are_rejected_naming_their_type((message, message_type) in mutated_message()) {
        match parse_client_message(&message.to_string()) {
            Ok(parsed) => prop_assert_eq!(parsed.message_type(), message_type.as_str()),
            Err(ParseError::Invalid { message_type: named, .. }) => prop_assert_eq!(named, message_type.as_str()),
            Err(error) => {
                check_error(&error);
                // Only a damaged `type` loses the message's type.
                prop_assert!(message.get("type").and_then(Json::as_str) != Some(message_type.as_str()), "{}", error);
            }
        }
    }

    #[test]
    fn a_connection_answers_anything((message, _) in mutated_message(), text in any::<String>()) {
        for input in [message.to_string(), text] {
            let mut connection = Connection::new();
            let connect = json!({"type": "Connect", "sessionId": "6a0f3c1e-2b4d-4e8f-a1b2-c3d4e5f60718",
                                 "connectionCount": 0});
            connection.receive_text(&connect.to_string());
            let effects = connection.receive_text(&input);
            if connection.is_closed() {
                check_rejection(&effects);
            } else if let [Effect::Authenticate(_)] = effects.as_slice() {
                prop_assert!(connection.authenticated(Err("no".to_owned())).len() == 2);
            }
        }
    }
}

#[test]
fn deep_nesting_is_rejected_without_exhausting_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(parse_client_message(&deep), Err(ParseError::NotJson(_))));

    // Within serde_json's depth but past the value nesting limit: the call fails, not the message.
    let args = format!("[{{\"a\":{}1{}}}]", "[".repeat(100), "]".repeat(100));
    let text = format!("{{\"type\":\"Mutation\",\"requestId\":1,\"udfPath\":\"a:b\",\"args\":{args}}}");
    let Ok(ClientMessage::Mutation(call)) = parse_client_message(&text) else { panic!() };
    let invalid = call.args.unwrap_err().to_string();
    assert!(invalid.contains("nested too deeply"), "{invalid}");
}
