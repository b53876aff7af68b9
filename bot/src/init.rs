//! `polity init`: a first `polity.toml`, every key explained, with a new secret key.
//!
//! The file holds only keys that [`Config::load`](crate::config::Config::load) accepts; the
//! optional ones are there commented out, ready to uncomment. The secret key is written to the
//! file alone (readable by its owner alone on Unix) and never printed.

use crate::config::{DEFAULT_DATABASE_URL, DEFAULT_HTTP_LISTEN};
use crate::store::SecretKey;
use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

/// How wide the file's comments are.
const WIDTH: usize = 92;

/// Writes a commented configuration file at `path` with a new secret key, refusing to replace
/// an existing file unless `force`. Returns what to tell the operator: where the file is and
/// what to do next, never the key.
///
/// # Errors
/// When the file exists and `force` is not given, or cannot be written.
pub fn init(path: &Path, force: bool) -> Result<String> {
    let existed = std::fs::symlink_metadata(path).is_ok();
    if existed && !force {
        bail!("{}", refusal(path));
    }
    let text = config_text(&SecretKey::generate());
    if force {
        replace_private(path, &text)?;
    } else {
        match create_private(path) {
            Ok(file) => write_all(file, path, &text)?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => bail!("{}", refusal(path)),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }
    Ok(next_steps(path, existed))
}

fn refusal(path: &Path) -> String {
    format!(
        "{} already exists, and Polity leaves it as it is: its secret key may be the one that seals the \
         secrets in the database. Pass --force to replace it with a new file and a new key.",
        path.display()
    )
}

/// A new file that nobody else may read (mode 0600 on Unix); an existing one is an error.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn write_all(mut file: File, path: &Path, text: &str) -> Result<()> {
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a new file beside `path` and renames it over `path`: the old file's permissions are
/// not kept, and nobody reads half a file.
fn replace_private(path: &Path, text: &str) -> Result<()> {
    let Some(name) = path.file_name() else {
        bail!("{} does not name a file", path.display());
    };
    let temp = path.with_file_name(format!(".{}.init-{}", name.to_string_lossy(), std::process::id()));
    let written = create_private(&temp)
        .with_context(|| format!("creating {}", temp.display()))
        .and_then(|file| write_all(file, &temp, text))
        .and_then(|()| std::fs::rename(&temp, path).with_context(|| format!("replacing {}", path.display())));
    if written.is_err() {
        let _gone = std::fs::remove_file(&temp);
    }
    written
}

/// `text` as comment lines of at most [`WIDTH`] columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The environment variable that sets `key` of `[platforms.NAME]`.
fn platform_var(name: &str, key: &str) -> String {
    format!("POLITY_{}_{}", name.to_uppercase(), key.to_uppercase())
}

/// The file `polity init` writes, holding `key`.
fn config_text(key: &str) -> String {
    let adapters = crate::platforms::adapters();
    let mut vars = vec![
        "POLITY_DATABASE_URL (or DATABASE_URL)".to_string(),
        "POLITY_SECRET_KEY".to_string(),
        "POLITY_HTTP_LISTEN".to_string(),
    ];
    for adapter in &adapters {
        let spec = adapter.spec();
        vars.extend(spec.env.iter().map(|key| platform_var(spec.name, key)));
    }
    let listen = DEFAULT_HTTP_LISTEN;
    let mut out = String::new();
    out.push_str("# polity.toml: the configuration of Polity, written by `polity init`.\n#\n");
    out.push_str(&comment(&format!(
        "Polity reads it from the directory it runs in, or from the file `polity --config FILE` names. \
         Environment variables win over it: {}. A key Polity does not know is an error, so a typo never \
         passes for a default.",
        vars.join(", ")
    )));
    out.push('\n');
    out.push_str(&comment(
        "Where Polity keeps every community, proposal, ballot and decision: a SQLite file (created when \
         missing; a relative path is relative to the directory Polity runs in) or a PostgreSQL database, \
         as in \"postgres://polity:PASSWORD@localhost:5432/polity\".",
    ));
    out.push_str(&format!("database_url = \"{DEFAULT_DATABASE_URL}\"\n\n"));
    out.push_str(&comment(
        "The key that seals the secrets Polity stores (communities' own bot tokens, API keys, webhook \
         secrets): 32 random bytes in base64, made for this installation. Keep it secret, and keep a copy \
         apart from the database's backups: without it those secrets cannot be read, and a database that \
         holds secrets refuses any other key.",
    ));
    out.push_str(&format!("secret_key = \"{key}\"\n\n"));
    out.push_str(&comment(&format!(
        "The HTTP server beside the bots: GET /healthz, GET /metrics, and the platforms' webhooks at \
         /hooks/PLATFORM/COMMUNITY.CONNECTION. `polity run` serves it on {listen} unless told otherwise \
         (\"0.0.0.0:{port}\" is every interface); with [http] it runs even when no bot is configured, as \
         webhook platforms need nothing else.",
        port = listen.port()
    )));
    out.push_str(&format!("# [http]\n# listen = \"{listen}\"\n"));
    for adapter in &adapters {
        let spec = adapter.spec();
        let Some(&first) = spec.env.first() else { continue };
        let what = spec.secret.unwrap_or(first);
        out.push('\n');
        out.push_str(&comment(&format!(
            "Polity's own {title} bot: uncomment [platforms.{name}] and put in {what}, or leave it commented \
             and set {var}, which keeps {what} out of this file.",
            title = spec.title,
            name = spec.name,
            var = platform_var(spec.name, first),
        )));
        for key in spec.env.iter().skip(1) {
            let help = spec.setting(key).map(|s| format!(": {}", s.help)).unwrap_or_default();
            out.push_str(&comment(&format!("Also `{key}` ({}){help}.", platform_var(spec.name, key))));
        }
        out.push_str(&format!("# [platforms.{}]\n# {first} = \"...\"\n", spec.name));
    }
    out
}

/// `path` as typed in a shell.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// What `polity init` prints: where the file is and what to do next. Never the key.
fn next_steps(path: &Path, replaced: bool) -> String {
    let shown = path.display();
    let config =
        if path == Path::new("polity.toml") { String::new() } else { format!(" --config {}", shell_word(path)) };
    let private = if cfg!(unix) { ", readable by you alone," } else { "" };
    let mut out = if replaced {
        format!(
            "Replaced {shown}{private} with a new file and a new secret key. The old key is gone: secrets that \
             a database sealed with it no longer open.\n"
        )
    } else {
        format!("Wrote {shown}{private} with a new secret key.\n")
    };
    out.push_str(
        "The key is in the file alone and is not shown again. Keep a copy of the file somewhere safe, apart \
         from the database's backups: the secrets Polity stores cannot be read without it.\n\nNext:\n",
    );
    let bots: Vec<String> = crate::platforms::adapters()
        .iter()
        .map(|a| a.spec())
        .filter_map(|spec| {
            let &first = spec.env.first()?;
            Some(format!(
                "[platforms.{}] and put in {} (or set {} instead)",
                spec.name,
                spec.secret.unwrap_or(first),
                platform_var(spec.name, first)
            ))
        })
        .collect();
    let mut step = 1;
    if !bots.is_empty() {
        out.push_str(&format!("  {step}. Give Polity a bot to run: in {shown}, uncomment {}.\n", bots.join("; or ")));
        step += 1;
    }
    out.push_str(&format!("  {step}. Start it: polity{config} run\n"));
    out.push_str(&format!("Or try Polity first, on the console and without any platform: polity{config} console\n"));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::config::Config;
    use figment::Figment;
    use figment::providers::{Format, Toml};
    use std::path::PathBuf;

    /// A directory of its own, removed at the end.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let dir = std::env::temp_dir().join(format!("polity-init-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _gone = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The file's own `secret_key`, read from the file alone (no environment).
    fn key_in(path: &Path) -> String {
        let config: Config = Figment::from(Toml::file_exact(path)).extract().unwrap();
        config.secret_key.unwrap()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_a_file_the_loader_accepts_with_a_key_it_never_prints() {
        let dir = TempDir::new("fresh");
        let path = dir.0.join("polity.toml");
        let said = init(&path, false).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert!(config.http.is_none() && config.platforms.is_empty(), "{config:?}");
        let key = key_in(&path);
        assert!(SecretKey::parse(&key).is_ok());
        assert!(!said.contains(&key), "{said}");
        assert!(said.contains(&path.display().to_string()) && said.contains("run"), "{said}");
        assert!(said.contains(&format!("--config {}", path.display())), "{said}");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        // No line is wider than the comments.
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line}");
        }
    }

    #[test]
    fn each_key_is_new() {
        let dir = TempDir::new("two");
        let (a, b) = (dir.0.join("a.toml"), dir.0.join("b.toml"));
        init(&a, false).unwrap();
        init(&b, false).unwrap();
        assert_ne!(key_in(&a), key_in(&b));
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = TempDir::new("existing");
        let path = dir.0.join("polity.toml");
        std::fs::write(&path, "database_url = \"sqlite::memory:\"\n").unwrap();
        let err = format!("{:#}", init(&path, false).unwrap_err());
        assert!(err.contains("already exists") && err.contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "database_url = \"sqlite::memory:\"\n");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let said = init(&path, true).unwrap();
        assert!(said.starts_with("Replaced") && said.contains("old key is gone"), "{said}");
        let key = key_in(&path);
        assert!(!said.contains(&key));
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600, "the replaced file's permissions are not kept");
        // Nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("polity.toml")]);
    }

    #[test]
    fn the_default_file_needs_no_config_flag() {
        let said = next_steps(Path::new("polity.toml"), false);
        assert!(said.contains("  2. Start it: polity run\n"), "{said}");
        let said = next_steps(Path::new("/etc/polity/my polity.toml"), false);
        assert!(said.contains("polity --config '/etc/polity/my polity.toml' run"), "{said}");
    }

    #[test]
    fn the_commented_keys_are_real_keys() {
        // Uncommenting every commented table and key gives a file the loader accepts.
        let text = config_text(&SecretKey::generate());
        let mut uncommented = String::new();
        let mut keys = 0;
        for line in text.lines() {
            let rest = line.strip_prefix("# ").unwrap_or("");
            let is_table = rest.starts_with('[') && rest.ends_with(']') && !rest.contains(' ');
            let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
            if is_table || is_key {
                keys += 1;
                uncommented.push_str(rest);
            } else {
                uncommented.push_str(line);
            }
            uncommented.push('\n');
        }
        assert!(keys >= 2, "{text}");
        let dir = TempDir::new("uncommented");
        let path = dir.0.join("polity.toml");
        std::fs::write(&path, &uncommented).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.http_listen(), DEFAULT_HTTP_LISTEN);
        for adapter in crate::platforms::adapters() {
            let spec = adapter.spec();
            if let Some(first) = spec.env.first() {
                assert_eq!(config.platforms[spec.name][*first], serde_json::json!("..."), "{uncommented}");
            }
        }
    }
}
