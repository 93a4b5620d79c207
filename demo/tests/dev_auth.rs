//! The demo's sign-in key: created once per deployment, kept across restarts, and accepted by the
//! provider built from it (and only by it).

use livebase_auth::{AuthConfig, Verifier};
use livebase_functions::Runtime;
use livebase_store::{Store, StoreConfig};
use piano_mirror::{DEV_AUTH_ISSUER, DEV_AUTH_KEY_VAR, DevSigner};

async fn runtime(directory: &tempfile::TempDir) -> Runtime {
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    Runtime::new(store, piano_mirror::registry().expect("the app's functions register"))
}

#[tokio::test]
async fn tokens_signed_at_sign_in_verify_across_restarts() {
    let directory = tempfile::tempdir().unwrap();
    let first = runtime(&directory).await;
    let signer = DevSigner::load_or_create(&first).await.unwrap();
    let stored = first.get_env(DEV_AUTH_KEY_VAR).unwrap().expect("the key is kept in the deployment");
    let token = signer.sign("user-id-123", "Ada");
    drop((first, signer));

    // A restart finds the same key: the token signed before it still verifies.
    let second = runtime(&directory).await;
    let signer = DevSigner::load_or_create(&second).await.unwrap();
    assert_eq!(second.get_env(DEV_AUTH_KEY_VAR).unwrap(), Some(stored));
    let verifier = Verifier::new(AuthConfig { providers: vec![signer.provider()] }).unwrap();
    let identity = verifier.verify(&token).await.expect("the token verifies");
    assert_eq!(identity.subject, "user-id-123");
    assert_eq!(identity.issuer, DEV_AUTH_ISSUER);
    assert_eq!(identity.token_identifier, format!("{DEV_AUTH_ISSUER}|user-id-123"));
}

#[tokio::test]
async fn another_deployments_tokens_are_refused() {
    let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let foreign = DevSigner::load_or_create(&runtime(&one).await).await.unwrap().sign("someone", "Eve");
    let ours = DevSigner::load_or_create(&runtime(&other).await).await.unwrap();
    let verifier = Verifier::new(AuthConfig { providers: vec![ours.provider()] }).unwrap();
    assert!(verifier.verify(&foreign).await.is_err(), "a key of another deployment signs nothing here");
}
