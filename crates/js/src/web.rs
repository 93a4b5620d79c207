//! The web APIs Convex functions commonly use (`crypto`, `TextEncoder`/`TextDecoder`, `URL`,
//! `URLSearchParams`, `Headers`, `Request`, `Response`, `Blob`, `fetch`), installed in every
//! context. `web.js` and `web/*.js` define them; what JavaScript cannot do well (the OS random
//! generator, UTF-8 with the WHATWG replacement rules, the WHATWG URL parser of the `url` crate) they
//! ask of the natives here. QuickJS already has `atob`/`btoa`, `DOMException`, `queueMicrotask`,
//! `performance` and `Uint8Array.prototype.toBase64`.
//!
//! Randomness: `crypto` always draws from the OS generator, in queries and mutations too, and
//! `Math.random` is QuickJS's own. Convex seeds the randomness of each query and mutation so that
//! re-running one gives the same result; Livebase does not, so a query that uses randomness may give
//! a different result each time it re-runs.

use std::collections::HashMap;
use std::sync::LazyLock;

use rand::TryRngCore as _;
use rand::rngs::OsRng;
use rquickjs::module::Evaluated;
use rquickjs::{Context, Ctx, Exception, Function, Module, Object, Runtime, TypedArray, WriteOptions};
use url::Url;
use url::form_urlencoded;

use crate::limits::MAX_RANDOM_VALUES_BYTES;

/// The modules, by name: `web.js` defines `crypto` and, for the other web APIs, globals that load
/// their group (`loadGroup(name)`) on first use; a group's default export is a function of web.js's
/// helpers that returns the group's globals.
const WEB: (&str, &str) = ("web.js", include_str!("web.js"));
const GROUPS: [(&str, &str); 3] = [
    ("encoding", include_str!("web/encoding.js")),
    ("url", include_str!("web/url.js")),
    ("http", include_str!("web/http.js")),
];

/// The modules compiled, once per process: parsing them again in every call's context would cost
/// more than the rest of the call's setup (bytecode holds atoms by name, so it loads in any runtime).
static COMPILED: LazyLock<HashMap<&str, Vec<u8>>> = LazyLock::new(|| {
    let runtime = Runtime::new().expect("a runtime to compile the web APIs");
    let context = Context::full(&runtime).expect("a context to compile the web APIs");
    context.with(|ctx| {
        let compile = |(name, source): &(&'static str, &str)| {
            let bytecode = Module::declare(ctx.clone(), format!("livebase:{name}"), *source)
                .and_then(|module| module.write(WriteOptions::default()))
                .unwrap_or_else(|error| panic!("the web API module {name} does not compile: {error}"));
            (*name, bytecode)
        };
        std::iter::once(&WEB).chain(&GROUPS).map(compile).collect()
    })
});

/// Loads and evaluates the compiled module `name`.
fn evaluate<'js>(ctx: &Ctx<'js>, name: &str) -> rquickjs::Result<Module<'js, Evaluated>> {
    // SAFETY: the bytecode is what `Module::write` made of our own modules with this same QuickJS.
    let declared = unsafe { Module::load(ctx.clone(), &COMPILED[name]) }?;
    let (module, evaluated) = declared.eval()?;
    // None of them awaits: evaluating settles the promise.
    evaluated.finish::<()>()?;
    Ok(module)
}

/// Defines the web APIs in a fresh context.
pub(crate) fn install(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    // QuickJS gives `DOMException` (its constructor, and the prototype of the ones `atob` or natives
    // throw) only to a runtime's first context: later ones (an engine makes one per bundle, and
    // again after a failed call) need it added.
    if ctx.globals().get::<_, Option<Function>>("DOMException")?.is_none() {
        // SAFETY: `ctx` is a live context of this thread, and adding the intrinsic is what QuickJS
        // does to every first context; it registers the class only if the runtime lacks it.
        let failed = unsafe { rquickjs::qjs::JS_AddIntrinsicDOMException(ctx.as_raw().as_ptr()) } != 0;
        if failed {
            return Err(rquickjs::Error::Allocation);
        }
    }
    ctx.globals().set("__livebaseWeb", natives(ctx)?)?;
    evaluate(ctx, WEB.0).map(drop)
}

/// The natives web.js and its groups call.
fn natives<'js>(ctx: &Ctx<'js>) -> rquickjs::Result<Object<'js>> {
    let natives = Object::new(ctx.clone())?;
    natives.set("randomBytes", Function::new(ctx.clone(), random_bytes)?)?;
    natives.set("randomUuid", Function::new(ctx.clone(), random_uuid)?)?;
    natives.set("encodeUtf8", Function::new(ctx.clone(), encode_utf8)?)?;
    natives.set("decodeUtf8", Function::new(ctx.clone(), decode_utf8)?)?;
    natives.set("parseUrl", Function::new(ctx.clone(), parse_url)?)?;
    natives.set("setUrl", Function::new(ctx.clone(), set_url)?)?;
    natives.set("parseForm", Function::new(ctx.clone(), parse_form)?)?;
    natives.set("serializeForm", Function::new(ctx.clone(), serialize_form)?)?;
    natives.set("loadGroup", Function::new(ctx.clone(), load_group)?)?;
    Ok(natives)
}

fn load_group<'js>(ctx: Ctx<'js>, name: String) -> rquickjs::Result<Function<'js>> {
    if !GROUPS.iter().any(|(group, _)| *group == name) {
        return Err(Exception::throw_internal(&ctx, &format!("web.js has no group `{name}`")));
    }
    evaluate(&ctx, &name)?.get("default")
}

fn os_random(ctx: &Ctx<'_>, bytes: &mut [u8]) -> rquickjs::Result<()> {
    OsRng
        .try_fill_bytes(bytes)
        .map_err(|error| Exception::throw_internal(ctx, &format!("The OS random generator failed: {error}")))
}

/// `length` bytes from the OS generator, at most `MAX_RANDOM_VALUES_BYTES` (a `QuotaExceededError`
/// beyond, as Convex and browsers throw).
fn random_bytes<'js>(ctx: Ctx<'js>, length: usize) -> rquickjs::Result<TypedArray<'js, u8>> {
    if length > MAX_RANDOM_VALUES_BYTES {
        return Err(Exception::throw_dom(
            &ctx,
            "QuotaExceededError",
            &format!(
                "crypto.getRandomValues fills at most {MAX_RANDOM_VALUES_BYTES} bytes per call \
                 (MAX_RANDOM_VALUES_BYTES), not {length}"
            ),
        ));
    }
    let mut bytes = vec![0; length];
    os_random(&ctx, &mut bytes)?;
    TypedArray::new(ctx, bytes)
}

/// A version 4 (random) UUID, in lowercase hex as `crypto.randomUUID` gives it.
fn random_uuid(ctx: Ctx<'_>) -> rquickjs::Result<String> {
    let mut bytes = [0u8; 16];
    os_random(&ctx, &mut bytes)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// `text` must be well-formed (web.js passes `toWellFormed()` strings): a lone surrogate has no UTF-8.
fn encode_utf8<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// UTF-8 decoding as `TextDecoder` does it: a leading byte order mark is dropped unless `ignore_bom`;
/// invalid sequences fail with a `TypeError` when `fatal`, else each maximal invalid subpart becomes
/// U+FFFD (the replacement rule WHATWG and `String::from_utf8_lossy` share).
fn decode_utf8(ctx: Ctx<'_>, bytes: TypedArray<'_, u8>, fatal: bool, ignore_bom: bool) -> rquickjs::Result<String> {
    // SAFETY: no JavaScript runs while `bytes` is borrowed: it is decoded into a Rust string first.
    let bytes = unsafe { bytes.as_bytes() }.unwrap_or_default();
    let bytes = if ignore_bom { bytes } else { bytes.strip_prefix(BYTE_ORDER_MARK).unwrap_or(bytes) };
    if fatal {
        return match str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(error) => Err(Exception::throw_type(&ctx, &format!("The data is not valid UTF-8: {error}"))),
        };
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// `input` parsed as WHATWG's URL parser does, against `base` if given; its components as the `URL`
/// getters show them, or a `TypeError`.
fn parse_url<'js>(ctx: Ctx<'js>, input: String, base: Option<String>) -> rquickjs::Result<Object<'js>> {
    let parsed = match &base {
        None => Url::parse(&input),
        Some(base) => Url::parse(base).and_then(|base| base.join(&input)),
    };
    match parsed {
        Ok(url) => components(&ctx, &url),
        Err(error) => {
            let against = base.map(|base| format!(" against the base {base:?}")).unwrap_or_default();
            Err(Exception::throw_type(&ctx, &format!("Invalid URL {input:?}{against}: {error}")))
        }
    }
}

fn components<'js>(ctx: &Ctx<'js>, url: &Url) -> rquickjs::Result<Object<'js>> {
    use url::quirks;
    let object = Object::new(ctx.clone())?;
    object.set("href", quirks::href(url))?;
    object.set("origin", quirks::origin(url))?;
    object.set("protocol", quirks::protocol(url))?;
    object.set("username", quirks::username(url))?;
    object.set("password", quirks::password(url))?;
    object.set("host", quirks::host(url))?;
    object.set("hostname", quirks::hostname(url))?;
    object.set("port", quirks::port(url))?;
    object.set("pathname", quirks::pathname(url))?;
    object.set("search", quirks::search(url))?;
    object.set("hash", quirks::hash(url))?;
    Ok(object)
}

/// The URL `href` with its `component` set to `value` as the `URL` setter does it: an invalid value
/// leaves the URL as it was, except for `href`, which throws a `TypeError`.
fn set_url<'js>(ctx: Ctx<'js>, href: String, component: String, value: String) -> rquickjs::Result<Object<'js>> {
    use url::quirks;
    let invalid = |why: String| Exception::throw_type(&ctx, &why);
    let mut url = Url::parse(&href).map_err(|error| invalid(format!("Invalid URL {href:?}: {error}")))?;
    // The setters' own failures are ignored: WHATWG leaves the URL unchanged then.
    match component.as_str() {
        "href" => {
            quirks::set_href(&mut url, &value).map_err(|error| invalid(format!("Invalid URL {value:?}: {error}")))?
        }
        "protocol" => quirks::set_protocol(&mut url, &value).unwrap_or(()),
        "username" => quirks::set_username(&mut url, &value).unwrap_or(()),
        "password" => quirks::set_password(&mut url, &value).unwrap_or(()),
        "host" => quirks::set_host(&mut url, &value).unwrap_or(()),
        "hostname" => quirks::set_hostname(&mut url, &value).unwrap_or(()),
        "port" => quirks::set_port(&mut url, &value).unwrap_or(()),
        "pathname" => quirks::set_pathname(&mut url, &value),
        "search" => quirks::set_search(&mut url, &value),
        "hash" => quirks::set_hash(&mut url, &value),
        other => return Err(invalid(format!("URL has no settable component `{other}`"))),
    }
    components(&ctx, &url)
}

/// An `application/x-www-form-urlencoded` string's pairs, flattened: `[name, value, name, value, ..]`.
fn parse_form(query: String) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes()).flat_map(|(name, value)| [name.into_owned(), value.into_owned()]).collect()
}

/// The flattened pairs `parse_form` gives, serialized back.
fn serialize_form(ctx: Ctx<'_>, flat: Vec<String>) -> rquickjs::Result<String> {
    let (pairs, rest) = flat.as_chunks::<2>();
    if !rest.is_empty() {
        return Err(Exception::throw_internal(&ctx, "serializeForm takes name/value pairs"));
    }
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    serializer.extend_pairs(pairs.iter().map(|[name, value]| (name, value)));
    Ok(serializer.finish())
}

#[cfg(test)]
mod tests {
    use rquickjs::{CatchResultExt, Context, Runtime};

    use super::*;

    /// Evaluates `script` in a fresh context with the web APIs; its value as JSON, or the thrown
    /// error as `name: message`.
    fn eval(script: &str) -> String {
        let runtime = Runtime::new().expect("a runtime");
        // Calls run in a runtime's later contexts, which QuickJS sets up with less than its first.
        let _first = Context::full(&runtime).expect("a context");
        let context = Context::full(&runtime).expect("a context");
        context.with(|ctx| {
            install(&ctx).expect("installing the web APIs");
            let wrapped = format!("(() => {{ try {{ return JSON.stringify((() => {{ {script} }})()); }} catch (error) {{ return `${{error.name}}: ${{error.message}}`; }} }})()");
            ctx.eval::<String, _>(wrapped).catch(&ctx).expect("the script runs")
        })
    }

    #[test]
    fn web_apis_load_on_first_use_and_can_be_replaced() {
        let script = "const lazy = (name) => Object.getOwnPropertyDescriptor(globalThis, name).get !== undefined; \
                      const before = [lazy('URL'), lazy('URLSearchParams'), lazy('Response')]; const url = typeof URL; \
                      globalThis.fetch = 7; \
                      return [before, url, lazy('URLSearchParams'), lazy('Response'), fetch, typeof Response, \
                      typeof queueMicrotask, typeof __livebaseWeb]";
        assert_eq!(eval(script), r#"[[true,true,true],"function",false,true,7,"function","function","undefined"]"#);
    }

    #[test]
    fn random_values_fill_up_to_the_limit_and_not_a_byte_more() {
        let at_limit = format!(
            "const a = new Uint8Array({MAX_RANDOM_VALUES_BYTES}); const b = crypto.getRandomValues(a); \
             return [b === a, a.some((byte) => byte !== 0)]"
        );
        assert_eq!(eval(&at_limit), "[true,true]");
        let words = format!("return crypto.getRandomValues(new Uint32Array({})).length", MAX_RANDOM_VALUES_BYTES / 4);
        assert_eq!(eval(&words), (MAX_RANDOM_VALUES_BYTES / 4).to_string());
        let past = format!("return crypto.getRandomValues(new Uint8Array({}))", MAX_RANDOM_VALUES_BYTES + 1);
        let error = eval(&past);
        assert!(error.starts_with("QuotaExceededError: "), "{error}");
        assert!(error.contains("MAX_RANDOM_VALUES_BYTES"), "{error}");
        assert!(eval("return crypto.getRandomValues(new Float64Array(2))").starts_with("TypeMismatchError"));
        let caught = format!(
            "try {{ crypto.getRandomValues(new Uint8Array({})) }} catch (error) {{ return error instanceof DOMException }}",
            MAX_RANDOM_VALUES_BYTES + 1
        );
        assert_eq!(eval(&caught), "true");
    }

    #[test]
    fn random_uuids_are_version_4_and_differ() {
        let uuids = eval("return [crypto.randomUUID(), crypto.randomUUID()]");
        let uuids: Vec<String> = serde_json::from_str(&uuids).expect("two strings");
        assert_ne!(uuids[0], uuids[1]);
        for uuid in uuids {
            let groups: Vec<&str> = uuid.split('-').collect();
            assert_eq!(groups.iter().map(|group| group.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{uuid}");
            assert!(groups[2].starts_with('4'), "{uuid}");
            assert!("89ab".contains(&groups[3][..1]), "{uuid}");
            assert!(uuid.chars().all(|char| char == '-' || char.is_ascii_hexdigit() && !char.is_ascii_uppercase()));
        }
    }

    #[test]
    fn utf8_round_trips_and_replaces_or_rejects_invalid_bytes() {
        assert_eq!(eval("return [...new TextEncoder().encode('é€😀')]"), "[195,169,226,130,172,240,159,152,128]");
        assert_eq!(eval("return [...new TextEncoder().encode('a\\ud800b')]"), "[97,239,191,189,98]");
        assert_eq!(eval("return new TextDecoder().decode(new Uint8Array([0xEF,0xBB,0xBF,104,105]))"), r#""hi""#);
        assert_eq!(
            eval("return new TextDecoder('utf-8', {ignoreBOM: true}).decode(new Uint8Array([0xEF,0xBB,0xBF,104]))"),
            "\"\u{feff}h\""
        );
        assert_eq!(eval("return new TextDecoder().decode(new Uint8Array([104,0xFF,0xE2,0x82,105]))"), r#""h��i""#);
        let fatal = eval("return new TextDecoder('utf-8', {fatal: true}).decode(new Uint8Array([104, 0xFF]))");
        assert!(fatal.starts_with("TypeError: The data is not valid UTF-8"), "{fatal}");
        let into = "const out = new Uint8Array(4); const r = new TextEncoder().encodeInto('aé€', out); \
                    return [r.read, r.written, [...out]]";
        assert_eq!(eval(into), "[2,3,[97,195,169,0]]");
        assert!(eval("return new TextDecoder('latin1')").starts_with("RangeError"));
        assert!(eval("return new TextDecoder().decode(new Uint8Array(1), {stream: true})").starts_with("TypeError"));
    }

    #[test]
    fn urls_parse_resolve_and_update_their_search_params() {
        let parts = "const u = new URL('../b/c?x=1&y=a+b#frag', 'https://user:pw@Example.com:8443/a/z'); \
                     return [u.href, u.origin, u.protocol, u.username, u.host, u.hostname, u.port, u.pathname, \
                     u.search, u.hash, u.searchParams.get('y'), JSON.stringify({u})]";
        assert_eq!(
            eval(parts),
            r##"["https://user:pw@example.com:8443/b/c?x=1&y=a+b#frag","https://example.com:8443","https:","user","example.com:8443","example.com","8443","/b/c","?x=1&y=a+b","#frag","a b","{\"u\":\"https://user:pw@example.com:8443/b/c?x=1&y=a+b#frag\"}"]"##
        );
        let invalid = eval("return new URL('/relative')");
        assert!(invalid.starts_with("TypeError: Invalid URL \"/relative\""), "{invalid}");
        assert_eq!(eval("return [URL.canParse('nope'), URL.canParse('a:b')]"), "[false,true]");
        let linked = "const u = new URL('https://x.test/p?a=1'); const p = u.searchParams; p.append('b', 'two words'); \
                      const afterAppend = u.href; u.search = '?c=3'; const afterSearch = [...p]; \
                      p.delete('c'); u.pathname = '/q r'; u.hash = 'h'; \
                      return [afterAppend, afterSearch, u.href, u.searchParams === p]";
        assert_eq!(eval(linked), r#"["https://x.test/p?a=1&b=two+words",[["c","3"]],"https://x.test/q%20r#h",true]"#);
        let href =
            "const u = new URL('https://x.test/'); try { u.href = 'nope' } catch (e) { return [e.name, u.href] }";
        assert_eq!(eval(href), r#"["TypeError","https://x.test/"]"#);
    }

    #[test]
    fn search_params_parse_serialize_and_iterate() {
        let params = "const p = new URLSearchParams('?a=1&b=%C3%A9&a=2&c&d=x%2'); \
                      return [p.get('a'), p.getAll('a'), p.get('b'), p.get('c'), p.get('d'), p.has('zz'), \
                      p.has('a', '2'), p.size, p.toString()]";
        assert_eq!(eval(params), r#"["1",["1","2"],"é","","x%2",false,true,5,"a=1&b=%C3%A9&a=2&c=&d=x%252"]"#);
        let edits = "const p = new URLSearchParams({z: '1', y: 'a&b=c'}); p.set('z', '~!'); p.append('x', ' '); \
                     p.sort(); const seen = []; p.forEach((v, k) => seen.push(k + '=' + v)); \
                     return [p.toString(), seen, [...p.keys()], [...p.values()], [...new URLSearchParams([['k', 'v']])]]";
        assert_eq!(
            eval(edits),
            r#"["x=+&y=a%26b%3Dc&z=%7E%21",["x= ","y=a&b=c","z=~!"],["x","y","z"],[" ","a&b=c","~!"],[["k","v"]]]"#
        );
        assert!(eval("return new URLSearchParams([['a', 'b', 'c']])").starts_with("TypeError"));
    }
}
