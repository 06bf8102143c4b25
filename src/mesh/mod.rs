//! The mesh: one logical broker per name across the contexts (tabs, workers) of an
//! origin. One context hosts the core; the others send it commands and receive their
//! events over `BroadcastChannel('<prefix>')` ([`resource_prefix`]). Everything here is
//! sans-IO and tested natively: the two state machines ([`client::ClientState`] in every
//! context, [`host::HostState`] in the hosting one), the wire format ([`frame`]), topology
//! recovery ([`topology`]), the bridge registry ([`bridge`]) and the names of the
//! origin-wide resources. The browser's driver
//! (BroadcastChannel, Web Locks, the app's JS) is `src/wasm/link.rs` with `js/glue.js`.

pub mod bridge;
pub mod client;
pub mod frame;
pub mod host;
pub mod topology;

use crate::core::{names, AmqpError};

/// What separates an app's namespace from the broker name in [`resource_prefix`].
pub const APP_SEPARATOR: char = ':';

/// The prefix of every origin-wide resource of broker `name` of app `app`: its IndexedDB
/// database, its BroadcastChannel and Web Locks (`<prefix>:host`, `<prefix>:client:<id>`).
///
/// Without an app it is `tabbit:<name>`, as before namespaces existed, so that existing
/// databases open as they did. With one it is `tabbit@<app>:<name>`: never equal to an
/// app-less prefix (the 7th character differs), and, as `app` cannot hold the separator,
/// two different (app, name) pairs never give the same prefix.
pub fn resource_prefix(name: &str, app: Option<&str>) -> Result<String, AmqpError> {
    names::check("broker name", name)?;
    let Some(app) = app else { return Ok(format!("tabbit:{name}")) };
    names::check("app name", app)?;
    if app.is_empty() || app.contains(APP_SEPARATOR) {
        return Err(AmqpError::precondition(format!(
            "connect(): 'app' is '{app}'; it must be 1 to 255 bytes without '{APP_SEPARATOR}' (the separator between \
             the app and the broker name in IndexedDB, lock and channel names): use e.g. 'my-app'"
        )));
    }
    Ok(format!("tabbit@{app}{APP_SEPARATOR}{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_app_the_prefix_is_the_one_before_namespaces() {
        assert_eq!(resource_prefix("default", None).unwrap(), "tabbit:default");
        assert_eq!(resource_prefix("a:b", None).unwrap(), "tabbit:a:b");
    }

    #[test]
    fn apps_get_prefixes_no_other_app_or_app_less_name_can_have() {
        let pairs = [
            ("x", None),
            ("default", None),
            ("@chat:default", None),
            ("default", Some("chat")),
            ("x:default", Some("chat")),
            ("default", Some("chat-x")),
            ("default", Some("other")),
            ("", Some("chat")),
        ];
        let prefixes: Vec<String> = pairs.iter().map(|(n, a)| resource_prefix(n, *a).unwrap()).collect();
        assert_eq!(prefixes[3], "tabbit@chat:default");
        let mut unique = prefixes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), prefixes.len(), "{prefixes:?}");
        // The app-less name that spells an app's prefix after "tabbit:" still differs.
        assert_ne!(resource_prefix("@chat:default", None).unwrap(), resource_prefix("default", Some("chat")).unwrap());
    }

    #[test]
    fn an_app_that_could_collide_is_an_error_that_says_what_to_use() {
        for bad in ["", "chat:v2", ":"] {
            let e = resource_prefix("default", Some(bad)).unwrap_err();
            assert_eq!(e.code.code(), 406);
            assert!(e.message.contains("'app'") && e.message.contains("without ':'"), "{}", e.message);
        }
        let long = "a".repeat(256);
        assert!(resource_prefix("default", Some(&long)).unwrap_err().message.contains("app name is 256 bytes"));
        assert!(resource_prefix(&long, None).is_err());
    }
}
