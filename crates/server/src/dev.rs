//! `livebase dev`'s reloading: the `convex/` folder is looked at every `WATCH_POLL_INTERVAL` (no
//! file-notification crate builds here), and when a file in it changed the folder is bundled again
//! and installed (`deploy::install`) without a restart. A folder that fails to bundle or load keeps
//! the previous functions serving; why is printed. The auth providers stay those of the start (the
//! server's token checks are set up once): a changed `auth.config.ts` is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use livebase_auth::AuthConfig;
use livebase_functions::Runtime;
use tokio_util::sync::CancellationToken;

use crate::deploy;

/// How often the folder is looked at for changes: a reload starts at most this long after a save.
pub const WATCH_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What a file looks like: path, length, modification time. A folder's is every file's, in order.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// What `livebase dev` reloads: a folder, bundled with the npm packages of `npm_dir`, into a
/// runtime whose server started with the auth config `auth`, its configuration files reading
/// `base_env` (`deploy::base_env`) as `process.env`.
pub struct Watched {
    pub folder: PathBuf,
    pub npm_dir: PathBuf,
    pub runtime: Runtime,
    pub auth: Option<AuthConfig>,
    pub base_env: BTreeMap<String, String>,
}

/// Reloads the folder whenever it changes, until `shutdown`.
pub async fn watch(watched: Watched, shutdown: CancellationToken) {
    let folder = &watched.folder;
    let mut seen = fingerprint_of(folder).await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(WATCH_POLL_INTERVAL) => {}
        }
        let now = fingerprint_of(folder).await;
        if now == seen {
            continue;
        }
        seen = now;
        reload(&watched).await;
    }
}

/// Bundles and installs the folder, printing what happened.
async fn reload(watched: &Watched) {
    let (folder, npm_dir) = (watched.folder.clone(), watched.npm_dir.clone());
    let bundled = tokio::task::spawn_blocking(move || livebase_js::bundle(&folder, &npm_dir)).await;
    let installed = match bundled {
        Ok(Ok(source)) => {
            deploy::install(&watched.runtime, source, &watched.base_env).await.map_err(|error| error.to_string())
        }
        Ok(Err(error)) => Err(error.to_string()),
        Err(error) => Err(format!("bundling failed: {error}")),
    };
    match installed {
        Ok(installed) => {
            for warning in &installed.config.warnings {
                eprintln!("warning: {warning}");
            }
            if installed.config.auth != watched.auth {
                eprintln!("warning: auth.config.ts changed: restart `livebase dev` for its providers to be used");
            }
            println!("Reloaded: {} functions, {} crons.", installed.functions, installed.config.crons.len());
        }
        Err(error) => eprintln!("The functions were not reloaded; the previous ones still serve.\n{error}"),
    }
}

async fn fingerprint_of(folder: &Path) -> Fingerprint {
    let folder = folder.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        fingerprint(&folder, &mut files);
        files.sort();
        files
    })
    .await
    .unwrap_or_default()
}

/// Adds the files under `folder` to `files`, skipping what bundling skips (`node_modules`, hidden
/// entries). What can't be read is left out: the reload it may cause reports it.
fn fingerprint(folder: &Path, files: &mut Fingerprint) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let Ok(metadata) = entry.metadata() else { continue };
        if metadata.is_dir() {
            fingerprint(&entry.path(), files);
        } else {
            files.push((entry.path(), metadata.len(), metadata.modified().ok()));
        }
    }
}
