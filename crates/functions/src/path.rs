//! Function paths: the names clients call functions by, `module:function`. The module is a file path
//! without extension (`students`, `admin/reports`); a path without `:` names the module's `default`
//! export, and a `.js` extension is dropped, both as in Convex, so `students.js` and `students:default`
//! are the same function.

use std::fmt;
use std::str::FromStr;

use livebase_value::validate_identifier;

use crate::limits::MAX_FUNCTION_PATH_LEN;

/// The function a path without `:` names.
pub const DEFAULT_FUNCTION_NAME: &str = "default";

/// A canonical function path. Displays as `module:function`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionPath {
    module: String,
    function: String,
}

/// Why a string is not a function path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid function path `{path}`: {problem}")]
pub struct PathError {
    pub path: String,
    pub problem: String,
}

impl FunctionPath {
    pub fn parse(path: &str) -> Result<FunctionPath, PathError> {
        let invalid = |problem: String| {
            // The path may be hostile and long: quote a bounded prefix of it.
            let shown: String = path.chars().take(MAX_FUNCTION_PATH_LEN).collect();
            Err(PathError { path: shown, problem })
        };
        if path.len() > MAX_FUNCTION_PATH_LEN {
            return invalid(format!("it is {} bytes long, more than {MAX_FUNCTION_PATH_LEN}", path.len()));
        }
        let (module, function) = path.split_once(':').unwrap_or((path, DEFAULT_FUNCTION_NAME));
        let module = module.strip_suffix(".js").unwrap_or(module);
        if module.is_empty() {
            return invalid("the module is empty (expected `module:function`)".to_owned());
        }
        for segment in module.split('/') {
            if segment.is_empty() {
                return invalid(format!("the module `{module}` has an empty segment"));
            }
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            if segment.starts_with('.') || !segment.chars().all(allowed) {
                return invalid(format!(
                    "the module segment `{segment}` must be letters, digits, `_`, `-` and `.`, not starting with `.`"
                ));
            }
        }
        if let Err(error) = validate_identifier("function", function) {
            return invalid(error.to_string());
        }
        Ok(FunctionPath { module: module.to_owned(), function: function.to_owned() })
    }

    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn function(&self) -> &str {
        &self.function
    }
}

impl FromStr for FunctionPath {
    type Err = PathError;

    fn from_str(path: &str) -> Result<FunctionPath, PathError> {
        FunctionPath::parse(path)
    }
}

impl fmt::Display for FunctionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(path: &str) -> String {
        FunctionPath::parse(path).unwrap_or_else(|error| panic!("{error}")).to_string()
    }

    fn problem(path: &str) -> String {
        FunctionPath::parse(path).expect_err(path).problem
    }

    #[test]
    fn paths_are_canonical() {
        assert_eq!(canonical("students:get"), "students:get");
        assert_eq!(canonical("admin/reports:weekly"), "admin/reports:weekly");
        assert_eq!(canonical("students"), "students:default");
        assert_eq!(canonical("students.js:get"), "students:get");
        assert_eq!(canonical("a-b/c_d.e:f"), "a-b/c_d.e:f");
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        assert!(problem(":get").contains("module is empty"), "{}", problem(":get"));
        assert!(problem("a//b:get").contains("empty segment"));
        assert!(problem("a/.hidden:get").contains("`.hidden`"));
        assert!(problem("stu dents:get").contains("`stu dents`"));
        assert!(problem("students:").contains("function"));
        assert!(problem("students:1get").contains("1get"));
        assert!(problem("students:get:more").contains("get:more"));
    }

    #[test]
    fn path_length_is_bounded() {
        let function = "f".repeat(60);
        let module = "m".repeat(MAX_FUNCTION_PATH_LEN - function.len() - 1);
        assert_eq!(canonical(&format!("{module}:{function}")).len(), MAX_FUNCTION_PATH_LEN);
        let too_long = format!("m{module}:{function}");
        assert!(problem(&too_long).contains(&format!("more than {MAX_FUNCTION_PATH_LEN}")));
    }
}
