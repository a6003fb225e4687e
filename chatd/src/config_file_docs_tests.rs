//! The documents that list every setting, checked against the settings table: the packaged
//! conffile and the README's Configuration table.

use super::tests::load_with;
use super::*;

#[test]
fn the_packaged_conffile_comments_out_every_key_with_its_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/chatd.toml");
    let text = std::fs::read_to_string(path).unwrap();
    for key in KEYS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("#{key} = "))),
            "packaging/chatd.toml lacks a commented {key}"
        );
    }
    // As shipped it sets nothing; uncommented, its values are the defaults (the paths shown
    // as examples aside).
    let (_d, shipped) = load_with(&text, &[]);
    let expected = Config {
        config_file: shipped.as_ref().unwrap().config_file.clone(),
        ..Config::default()
    };
    assert_eq!(shipped.unwrap(), expected);
    let examples = [
        "listen",
        "tls_listen",
        "tls_cert",
        "tls_key",
        "admin_socket",
        "password_file",
        "log_dir",
        "log_level",
        "pid_file",
    ];
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| KEYS.iter().any(|k| l.starts_with(&format!("{k} = "))))
        .filter(|l| !examples.iter().any(|k| l.starts_with(&format!("{k} = "))))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_d, c) = load_with(&uncommented, &[]);
    let mut c = c.unwrap();
    c.config_file = None;
    assert_eq!(c, Config::default());
}

#[test]
fn the_readme_table_shows_every_key_with_its_default_range_and_reload() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let section = readme.split("\n## Configuration\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.splitn(5, " | ").collect())
        .collect();
    let keys: Vec<&str> = rows.iter().map(|r| r[0].trim_end_matches('`')).collect();
    assert_eq!(keys, KEYS);
    for (row, (key, default)) in rows.iter().zip(written(&Settings::default())) {
        // A row whose every value will do says so in its own words.
        if let Some(range) = Layer::range_of(key) {
            assert_eq!(row[2], range, "the README's range for {key}");
        }
        let reload = Settings::reload_of(key).unwrap().as_str();
        assert_eq!(row[3], reload, "the README's reload for {key}");
        match default {
            Some(v) => assert_eq!(row[1], format!("`{v}`"), "the README's default for {key}"),
            None => assert!(row[1].starts_with("not set"), "{key} has no default"),
        }
    }
}
