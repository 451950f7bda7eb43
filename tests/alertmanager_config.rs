//! Alertmanager configuration files as argus reads them: every file of
//! Alertmanager's config test data gets the verdict Alertmanager gives it
//! (`EXPECTED.tsv`), except that a valid file using an integration argus
//! does not deliver to is refused with an error naming that integration
//! and its position, and one naming a `*_file` that does not exist here
//! is refused with that file's position (amtool reads them only at send
//! time; argus checks them where they are configured, on purpose).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn verdicts_match_alertmanager() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    let expected = std::fs::read_to_string(root.join("alertmanager/EXPECTED.tsv")).unwrap();
    let (mut good, mut good_unsupported, mut good_missing_file, mut bad) = (0, 0, 0, 0);
    for line in expected.lines().skip(1) {
        let Some((file, verdict)) = line.split_once('\t') else {
            continue;
        };
        let path = root.join(file);
        let out = Command::new(common::argus_bin())
            .args(["check", "alertmanager"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let name = path.display().to_string();
        match verdict {
            "good" if out.status.success() => good += 1,
            "good" => {
                // Only for integrations argus lacks or files that are not
                // there, said with the position.
                assert!(
                    err.lines().all(|l| (l.contains("is not supported by argus")
                        || l.contains("_file: cannot read"))
                        && l.starts_with(&format!("{name}:"))
                        && l.split(':')
                            .nth(1)
                            .is_some_and(|n| n.parse::<u32>().is_ok())),
                    "{file} is valid but was refused:\n{err}"
                );
                if err.contains("is not supported by argus") {
                    good_unsupported += 1;
                } else {
                    good_missing_file += 1;
                }
            }
            "bad" => {
                assert!(!out.status.success(), "{file} is invalid but was accepted");
                assert!(err.starts_with(&format!("{name}:")), "{file}: {err}");
                bad += 1;
            }
            v => panic!("unknown verdict {v}"),
        }
    }
    assert_eq!(good + good_unsupported + good_missing_file + bad, 53);
    assert!(
        good + good_missing_file >= 13,
        "only {good} valid files load"
    );
    eprintln!(
        "{good} valid files load, {good_missing_file} refused for a *_file that is not here, {good_unsupported} refused for their integration type, {bad} invalid refused"
    );
}

#[test]
fn errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let check = |src: &str| {
        let f = tmp.path().join("am.yml");
        std::fs::write(&f, src).unwrap();
        let out = Command::new(common::argus_bin())
            .args(["check", "alertmanager"])
            .arg(&f)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE"),
        )
    };
    let (ok, err) = check(
        "route:\n  receiver: team\nreceivers:\n  - name: team\n    slack_configs:\n      - channel: '#x'\n",
    );
    assert!(!ok);
    assert_eq!(
        err.trim(),
        "FILE:6:9: receivers[0].slack_configs[0]: no Slack API URL nor App token set either inline or in a file"
    );
    let (ok, err) = check(
        "route:\n  receiver: team\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://x/\n        url_fle: y\n",
    );
    assert!(!ok);
    assert!(
        err.starts_with("FILE:7:9: ") && err.contains("field \"url_fle\" is not allowed here"),
        "{err}"
    );
    let (ok, err) = check(
        "route:\n  receiver: team\nreceivers:\n  - name: team\n    email_configs:\n      - to: a@b\n",
    );
    assert!(!ok && err.contains("no global SMTP smarthost set"), "{err}");
    let (ok, _) = check(
        "global:\n  smtp_smarthost: 'localhost:25'\n  smtp_from: a@b\nroute:\n  receiver: team\nreceivers:\n  - name: team\n    email_configs:\n      - to: c@d\n    pagerduty_configs:\n      - routing_key: k\n    webhook_configs:\n      - url: http://127.0.0.1:1/\n",
    );
    assert!(ok);
}
