//! Replacing a deployment's functions with a TypeScript app: a bundle `livebase_js::bundle` made of a
//! `convex/` folder, here or on the machine of whoever runs `livebase deploy`.
//!
//! [`install`] is the one way in, for `livebase dev` reloading its folder and for
//! `POST /api/admin/deploy` (body: the bundle, `Authorization: Convex <admin key>`; answers
//! `{"functions": n, "crons": n, "warnings": [...]}`): everything that can refuse the app (the bundle,
//! its functions, schema and crons) is checked before anything changes, then the schema is applied
//! (new indexes back-filled, existing documents checked against new validators) and the functions
//! and crons replace the old ones; live queries rerun on the new code. The auth config is read
//! only when `livebase dev` starts. While the configuration files are read, `process.env` is
//! [`base_env`] overlaid with the deployment's environment variables (Convex has only the latter and
//! its own URLs; a new deployment has no variables yet, and its auth.config.ts must load to start).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use livebase_functions::{Registry, Runtime};
use livebase_js::limits::MAX_BUNDLE_BYTES;
use livebase_js::{App, AppConfig, LoadError};
use serde_json::json;

use crate::Shared;
use crate::http_api::{RequestError, require_admin};

/// Why an app was not installed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The app is not valid: its bundle, functions, schema or crons.
    #[error(transparent)]
    Invalid(#[from] LoadError),
    /// The store refused the schema (documents not matching a new validator, say) or the crons.
    #[error("{0}")]
    Refused(String),
}

/// What an installed app is made of.
#[derive(Debug)]
pub struct Installed {
    pub functions: usize,
    pub config: AppConfig,
}

/// What the configuration files of an app served on `api` (and `site`) read as `process.env`, unless
/// a deployment's environment variable says otherwise: the server's own environment, and the
/// deployment's URLs as Convex names them (`CONVEX_CLOUD_URL`, `CONVEX_SITE_URL`).
pub fn base_env(api: SocketAddr, site: SocketAddr) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.insert("CONVEX_CLOUD_URL".to_owned(), format!("http://{api}"));
    env.insert("CONVEX_SITE_URL".to_owned(), format!("http://{site}"));
    env
}

/// Loads the bundle `source` and makes its functions, crons and schema the deployment's; its
/// configuration files read `base_env` overlaid with the deployment's environment variables.
pub async fn install(
    runtime: &Runtime,
    source: String,
    base_env: &BTreeMap<String, String>,
) -> Result<Installed, InstallError> {
    let mut env = base_env.clone();
    env.extend(runtime.list_env().map_err(|error| InstallError::Refused(error.to_string()))?);
    // Evaluating the bundle waits for a JavaScript worker: not on the async runtime's threads.
    let loaded = tokio::task::spawn_blocking(move || {
        let app = App::from_bundle(source)?;
        let config = app.config(&env)?;
        let mut registry = Registry::new();
        app.register(&mut registry)?;
        config.register_crons(&mut registry)?;
        Ok::<_, LoadError>((app.functions().len(), config, registry))
    })
    .await
    .map_err(|error| InstallError::Refused(format!("loading the app failed: {error}")))?;
    let (functions, config, registry) = loaded?;
    let _one_at_a_time = runtime.app_replacement().await;
    if let Some(schema) = &config.schema {
        let store = runtime.store();
        store.apply_schema(schema).await.map_err(|error| InstallError::Refused(format!("schema.ts: {error}")))?;
    }
    runtime.replace_registry(registry).await.map_err(|error| InstallError::Refused(error.to_string()))?;
    Ok(Installed { functions, config })
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    // The limit is the bundle's: a larger body is refused before it is read whole.
    Router::new().route("/api/admin/deploy", post(deploy)).layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES))
}

async fn deploy(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(refusal) = require_admin(&shared, &headers, "Deploying").await {
        return refusal.into_response();
    }
    let Some(base_env) = &shared.deploy_env else {
        let why = "This server does not accept deploys: its functions are built in. Start `livebase dev` to deploy.";
        return RequestError::new(StatusCode::FORBIDDEN, "DeploysDisabled", why).into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return RequestError::body(rejection, MAX_BUNDLE_BYTES, "MAX_BUNDLE_BYTES").into_response(),
    };
    let Ok(source) = String::from_utf8(body.to_vec()) else {
        return RequestError::invalid("The bundle is not UTF-8 text").into_response();
    };
    match install(&shared.runtime, source, base_env).await {
        Ok(installed) => {
            for warning in &installed.config.warnings {
                tracing::warn!("deploy: {warning}");
            }
            tracing::info!(functions = installed.functions, "deployed a new version of the app");
            axum::Json(json!({
                "functions": installed.functions,
                "crons": installed.config.crons.len(),
                "warnings": installed.config.warnings,
            }))
            .into_response()
        }
        Err(error) => RequestError::invalid(error.to_string()).into_response(),
    }
}
