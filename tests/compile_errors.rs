//! Compile's own refusals, end to end through the binary: each names what is wrong and
//! where, and stores nothing.

mod common;

use common::{FakePackage, World, refused};

fn world(statement: &str) -> World {
    let group = format!(
        "group odd version=\"1.0\" {{\n    flavors openvz\n    package bash\n    {statement}\n}}\n"
    );
    World::new(
        &[FakePackage::new("bash", "5.2.15-2+b2").file("/bin/bash", "#!fake bash\n")],
        &[("odd", &group)],
    )
}

#[test]
fn a_file_owned_by_an_account_the_tree_lacks_is_refused_at_its_statement() {
    for (statement, said) in [
        (
            r#"file "/etc/motd" owner="nobody-here""#,
            "owner `nobody-here` of /etc/motd is not a user of the system (etc/passwd under",
        ),
        (
            r#"file "/etc/motd" group="wheel""#,
            "group `wheel` of /etc/motd is not a group of the system (etc/group under",
        ),
    ] {
        let w = world(statement);
        let err = w.fails(&["compile", "groups/odd.kdl"]);
        assert!(
            err.contains(&format!("error: groups/odd.kdl:4:5: {said}")),
            "{statement}: {err}"
        );
        assert!(!w.ws.join("store").exists(), "{statement}: stored");
    }
}

#[test]
fn configure_job_refuses_a_file_that_is_no_job() {
    let w = world("");
    let job = w.dir.path().join("job.json");
    std::fs::write(&job, "{\"not\": \"a job\"}").unwrap();
    let err = refused(w.command(&["configure-job", job.to_str().unwrap()]));
    assert!(
        err.contains(&format!("error: {}: not a configure job: ", job.display())),
        "{err}"
    );
}
