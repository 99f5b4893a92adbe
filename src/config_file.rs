//! Editing the configuration file in place (`coachd setup`): values set by their dotted
//! key, everything else in the file (the admin's comments, order, other values) kept.
//! The edited text is checked by the caller's loader before it replaces the file, and
//! replaces it atomically with the old file's mode and owner, so a refused or
//! interrupted edit leaves the file as it was.

use std::path::Path;

/// A value to set.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Bool(bool),
}

impl From<&Value> for toml_edit::Value {
    fn from(v: &Value) -> Self {
        match v {
            Value::Text(s) => s.as_str().into(),
            Value::Bool(b) => (*b).into(),
        }
    }
}

/// `text` with each (`section.key` or `section.sub.key`, value) set; missing tables are
/// made. A key that names a table, or a table that is a value, is refused.
pub fn edit(text: &str, values: &[(&str, Value)]) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("the configuration does not parse: {e}"))?;
    for (key, value) in values {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, tables) = parts.split_last().ok_or_else(|| "an empty key".to_string())?;
        let mut table = doc.as_table_mut();
        for name in tables {
            let item = table.entry(name).or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            });
            table = item.as_table_mut().ok_or_else(|| format!("{key}: {name} is not a table"))?;
        }
        if table.get(last).is_some_and(|i| i.is_table()) {
            return Err(format!("{key} is a table, not a value"));
        }
        table.insert(last, toml_edit::value(toml_edit::Value::from(value)));
    }
    Ok(doc.to_string())
}

/// Replace the file at `path` with `text`: written beside it, synced, given the old
/// file's mode and owner (or 0600 for a new file), checked by `check` (the loader every
/// start uses), then renamed over it. A refused text leaves the old file as it was.
pub fn replace(path: &Path, text: &str, check: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let tmp = write_beside(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    if let Err(e) = check(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("replacing {}: {e}", path.display()))
}

fn write_beside(path: &Path, text: &str) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let old = std::fs::metadata(path).ok();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if let Some(old) = &old {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
        // Only root can give a file away; anyone else keeps owning what they write.
        if let Err(e) = std::os::unix::fs::chown(&tmp, Some(old.uid()), Some(old.gid())) {
            if e.kind() != std::io::ErrorKind::PermissionDenied {
                return Err(e);
            }
        }
    }
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_set_and_every_comment_is_kept() {
        let text = "# top\n[web]\n# listen = \"127.0.0.1:7878\"\n\n[providers.strava]\n# client_id = \"\"\n";
        let out = edit(
            text,
            &[
                ("web.public_url", Value::Text("https://coach.example.org".into())),
                ("providers.strava.enabled", Value::Bool(false)),
                ("mqtt.enabled", Value::Bool(true)),
            ],
        )
        .expect("edited");
        for kept in ["# top", "# listen = \"127.0.0.1:7878\"", "# client_id = \"\""] {
            assert!(out.contains(kept), "{out}");
        }
        let v: toml::Table = out.parse().expect("toml");
        assert_eq!(v["web"]["public_url"].as_str(), Some("https://coach.example.org"));
        assert_eq!(v["providers"]["strava"]["enabled"].as_bool(), Some(false));
        assert_eq!(v["mqtt"]["enabled"].as_bool(), Some(true));
        // Setting again replaces, never duplicates.
        let again = edit(&out, &[("web.public_url", Value::Text("https://b.example".into()))]).expect("edited");
        assert_eq!(again.matches("public_url =").count(), 1, "{again}");
        assert!(edit(text, &[("providers.strava", Value::Bool(true))]).is_err());
        assert!(edit("[web\n", &[("web.x", Value::Bool(true))]).is_err());
    }

    #[test]
    fn a_replaced_file_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("coachd.toml");
        std::fs::write(&path, "a = 1\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(replace(&path, "a = 3\n", |_| Err("no".into())).is_err());
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a = 1\n", "a refused text changes nothing");
        replace(&path, "a = 2\n", |tmp| {
            assert_eq!(std::fs::read_to_string(tmp).map_err(|e| e.to_string())?, "a = 2\n");
            Ok(())
        })
        .expect("replaced");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "a = 2\n");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o640);
        assert!(!dir.path().join("coachd.toml.new").exists());
    }
}
