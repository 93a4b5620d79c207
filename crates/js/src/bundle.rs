//! Bundling a `convex/` folder into one ES module with esbuild, as the Convex CLI does (ESM, platform
//! browser, conditions `convex` and `module`), with `convex/server` and `convex/values` resolved from
//! the npm `convex` package installed next to esbuild.
//!
//! The folder is copied into a staging directory beside a `node_modules` link to the packages, so
//! that its imports resolve as they would in the app's own checkout; `_generated/server` and
//! `_generated/api` are written there when the folder has none. The bundle's entry imports every
//! function module and exports them as `modules`, by module path (`messages`, `admin/users`), and
//! `config()`, which reads the app's configuration: `schema.ts` and `auth.config.ts` (imported
//! dynamically, so esbuild makes their code run only when the configuration is read) and the
//! default export of `crons.ts`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a folder bundles into.
#[derive(Debug)]
pub(crate) struct Bundle {
    /// The ES module, exporting `modules`.
    pub(crate) source: String,
}

/// Why a `convex/` folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("Can't read or stage `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("esbuild is not installed at `{0}`: run `npm ci` in the npm folder of livebase-js")]
    NoEsbuild(PathBuf),
    #[error("esbuild could not bundle the functions:\n{0}")]
    Esbuild(String),
    #[error("Evaluating the bundle failed: {0}")]
    Evaluation(String),
    #[error(
        "The bundle is {bytes} bytes: at most {max} (MAX_BUNDLE_BYTES)",
        max = crate::limits::MAX_BUNDLE_BYTES
    )]
    TooLarge { bytes: usize },
    #[error("{file}: {why}")]
    Config { file: &'static str, why: String },
    #[error("Function `{path}`: {why}")]
    Function { path: String, why: String },
    #[error(transparent)]
    Registry(#[from] livebase_functions::RegistryError),
}

/// Extensions of the files that are function modules.
const MODULE_EXTENSIONS: [&str; 5] = ["ts", "tsx", "js", "jsx", "mjs"];

/// What `import { query } from "./_generated/server"` gives when the app has no generated code.
const GENERATED_SERVER: &str = r#"export {
  queryGeneric as query,
  internalQueryGeneric as internalQuery,
  mutationGeneric as mutation,
  internalMutationGeneric as internalMutation,
  actionGeneric as action,
  internalActionGeneric as internalAction,
  httpActionGeneric as httpAction,
} from "convex/server";
"#;

/// The `config` export: the app's configuration as JSON (`schema`: the schema's `export()`, `crons`:
/// the crons' `export()`, `auth`: the auth config), each `null` when the app has none. `SCHEMA`,
/// `AUTH` and `CRONS` are replaced by the expressions that load them.
const CONFIG_EXPORT: &str = r#"export async function config() {
  const schema = SCHEMA;
  if (schema !== undefined && typeof schema?.export !== "function") {
    throw new Error("schema.ts: its default export must be `defineSchema({...})`");
  }
  const auth = AUTH;
  const crons = CRONS;
  if (crons !== undefined && crons?.isCrons !== true) {
    throw new Error("crons.ts: its default export must be the `cronJobs()` object");
  }
  return JSON.stringify({
    schema: schema === undefined ? null : JSON.parse(schema.export()),
    crons: crons === undefined ? null : JSON.parse(crons.export()),
    auth: auth ?? null,
  });
}
"#;

/// `api` and `internal` without code generation: references built from property paths.
const GENERATED_API: &str = r#"import { anyApi } from "convex/server";
export const api = anyApi;
export const internal = anyApi;
"#;

/// Bundles the folder `convex_dir` with the packages installed in `npm_dir` (esbuild and `convex`).
pub(crate) fn bundle(convex_dir: &Path, npm_dir: &Path) -> Result<Bundle, LoadError> {
    let esbuild = npm_dir.join("node_modules/esbuild/bin/esbuild");
    if !esbuild.exists() {
        return Err(LoadError::NoEsbuild(esbuild));
    }
    let stage = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
    let staged = stage.path().join("convex");
    let mut modules = Vec::new();
    copy_folder(convex_dir, &staged, "", &mut modules)?;
    let config = ConfigFiles {
        schema: top_level_file(&staged, "schema"),
        auth: top_level_file(&staged, "auth.config"),
        crons: modules.iter().any(|(path, _)| path == "crons"),
    };
    for (name, source) in [("server.js", GENERATED_SERVER), ("api.js", GENERATED_API)] {
        let generated = staged.join("_generated");
        let stem = name.trim_end_matches(".js");
        let present = MODULE_EXTENSIONS.iter().any(|extension| generated.join(format!("{stem}.{extension}")).exists());
        if !present {
            fs::create_dir_all(&generated).map_err(io(&generated))?;
            fs::write(generated.join(name), source).map_err(io(generated.join(name)))?;
        }
    }
    let node_modules = npm_dir.join("node_modules");
    std::os::unix::fs::symlink(&node_modules, stage.path().join("node_modules")).map_err(io(&node_modules))?;
    let entry = stage.path().join("entry.js");
    fs::write(&entry, entry_source(&modules, &config)).map_err(io(&entry))?;
    let output = Command::new(&esbuild)
        .current_dir(stage.path())
        .args([
            "entry.js",
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--conditions=convex,module",
            "--log-level=error",
            "--charset=utf8",
        ])
        .output()
        .map_err(io(&esbuild))?;
    if !output.status.success() {
        return Err(LoadError::Esbuild(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let source = String::from_utf8(output.stdout).map_err(|_| LoadError::Esbuild("its output is not UTF-8".into()))?;
    check_size(&source)?;
    Ok(Bundle { source })
}

/// Refuses a bundle over `MAX_BUNDLE_BYTES`: every call's context evaluates all of it.
pub(crate) fn check_size(source: &str) -> Result<(), LoadError> {
    if source.len() > crate::limits::MAX_BUNDLE_BYTES {
        return Err(LoadError::TooLarge { bytes: source.len() });
    }
    Ok(())
}

/// The configuration files a folder has: `schema` and `auth` are the files' names in the folder.
struct ConfigFiles {
    schema: Option<String>,
    auth: Option<String>,
    crons: bool,
}

/// The name of the file `stem.<a module extension>` at the top of the folder, if there is one.
fn top_level_file(folder: &Path, stem: &str) -> Option<String> {
    MODULE_EXTENSIONS.iter().map(|extension| format!("{stem}.{extension}")).find(|name| folder.join(name).is_file())
}

/// `import * as m0 from "./convex/messages.ts"; ... export const modules = {"messages": m0, ...};`,
/// then the `config` export.
fn entry_source(modules: &[(String, String)], config: &ConfigFiles) -> String {
    let mut source = String::new();
    for (n, (_, file)) in modules.iter().enumerate() {
        let specifier = serde_json::to_string(&format!("./convex/{file}")).expect("a string serializes");
        writeln!(source, "import * as m{n} from {specifier};").expect("writing to a String");
    }
    source.push_str("export const modules = {\n");
    for (n, (path, _)) in modules.iter().enumerate() {
        let path = serde_json::to_string(path).expect("a string serializes");
        writeln!(source, "  {path}: m{n},").expect("writing to a String");
    }
    source.push_str("};\n");
    let dynamic_default = |file: &Option<String>| match file {
        Some(file) => {
            let specifier = serde_json::to_string(&format!("./convex/{file}")).expect("a string serializes");
            format!("(await import({specifier})).default")
        }
        None => "undefined".to_owned(),
    };
    let crons = if config.crons { r#"modules["crons"].default"# } else { "undefined" };
    source.push_str(
        &CONFIG_EXPORT
            .replace("SCHEMA", &dynamic_default(&config.schema))
            .replace("AUTH", &dynamic_default(&config.auth))
            .replace("CRONS", crons),
    );
    source
}

/// Copies the folder `from` into `to`, adding to `modules` each function module as (module path,
/// file path), both relative to the top folder. Skips `node_modules` and hidden entries.
fn copy_folder(from: &Path, to: &Path, prefix: &str, modules: &mut Vec<(String, String)>) -> Result<(), LoadError> {
    fs::create_dir_all(to).map_err(io(to))?;
    let mut entries = fs::read_dir(from).map_err(io(from))?.collect::<Result<Vec<_>, _>>().map_err(io(from))?;
    // Sorted, so the bundle and the registry's order are the same on every machine.
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        if entry.file_type().map_err(io(&path))?.is_dir() {
            copy_folder(&path, &to.join(&name), &format!("{relative}/"), modules)?;
            continue;
        }
        fs::copy(&path, to.join(&name)).map_err(io(&path))?;
        if let Some(module) = module_path(&relative) {
            modules.push((module, relative));
        }
    }
    Ok(())
}

/// The module path of a file that holds functions (`admin/users.ts` → `admin/users`), as Convex
/// decides: a module extension, one dot only (not `auth.config.ts`, `x.test.ts`, `x.d.ts`), no part
/// of the path starting with `_` (`_generated`), and not the schema (`schema.ts` at the top).
fn module_path(relative: &str) -> Option<String> {
    if relative.split('/').any(|part| part.starts_with('_')) {
        return None;
    }
    let (stem, extension) = relative.rsplit_once('.')?;
    let file_stem = stem.rsplit('/').next().unwrap_or(stem);
    (MODULE_EXTENSIONS.contains(&extension) && !file_stem.contains('.') && stem != "schema").then(|| stem.to_owned())
}

fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoadError {
    let path = path.into();
    move |source| LoadError::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_modules_are_named_by_their_path_without_extension() {
        assert_eq!(module_path("messages.ts").as_deref(), Some("messages"));
        assert_eq!(module_path("admin/users.tsx").as_deref(), Some("admin/users"));
        assert_eq!(module_path("crons.ts").as_deref(), Some("crons"));
        assert_eq!(module_path("admin/schema.ts").as_deref(), Some("admin/schema"));
        for skipped in [
            "schema.ts",
            "auth.config.ts",
            "messages.test.ts",
            "types.d.ts",
            "_generated/api.js",
            "_lib/x.ts",
            "a.json",
        ] {
            assert_eq!(module_path(skipped), None, "{skipped}");
        }
    }
}
