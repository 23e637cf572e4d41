//! RPM resolver tests: every universe is built in code from `RpmPackage` values.

use super::*;
use crate::resolve::Chosen;
use crate::source::Origin;
use crate::source::rpm::Requirement;

/// A pool package of `x86_64` (or the arch after a `.`: `foo.noarch`) at `evr`,
/// providing its own `name = evr` as rpmbuild does.
fn pkg(name: &str, evr: &str) -> RpmPackage {
    let (name, arch) = name.split_once('.').unwrap_or((name, "x86_64"));
    RpmPackage {
        name: name.into(),
        evr: evr.into(),
        arch: arch.into(),
        provides: vec![cap(&format!("{name} = {evr}"))],
        requires: Vec::new(),
        conflicts: Vec::new(),
        obsoletes: Vec::new(),
        files: Vec::new(),
        origin: Origin::Pool,
        archive: None,
        listing: None,
    }
}

/// `foo`, `foo >= 1.2` or a rich `(a or b)`, as a header holds it.
fn cap(text: &str) -> Capability {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words[..] {
        [name, op, evr] if !text.starts_with('(') => {
            let op = match op {
                "<" => Op::Lt,
                "<=" => Op::Le,
                "=" => Op::Eq,
                ">=" => Op::Ge,
                ">" => Op::Gt,
                other => panic!("no rpm operator {other}"),
            };
            Capability {
                name: name.into(),
                constraint: Some((op, evr.into())),
            }
        }
        _ => Capability {
            name: text.into(),
            constraint: None,
        },
    }
}

fn requires(mut p: RpmPackage, list: &[&str]) -> RpmPackage {
    p.requires = (list.iter())
        .map(|text| Requirement {
            capability: cap(text),
            pre: false,
        })
        .collect();
    p
}

fn provides(mut p: RpmPackage, list: &[&str]) -> RpmPackage {
    p.provides.extend(list.iter().map(|text| cap(text)));
    p
}

fn conflicts(mut p: RpmPackage, list: &[&str]) -> RpmPackage {
    p.conflicts = list.iter().map(|text| cap(text)).collect();
    p
}

fn obsoletes(mut p: RpmPackage, list: &[&str]) -> RpmPackage {
    p.obsoletes = list.iter().map(|text| cap(text)).collect();
    p
}

fn files(mut p: RpmPackage, paths: &[&str]) -> RpmPackage {
    p.files = paths.iter().map(|path| path.to_string()).collect();
    p
}

fn installed(mut p: RpmPackage) -> RpmPackage {
    p.origin = Origin::Installed;
    p
}

fn named() -> Reason {
    Reason::Named {
        group: "web".into(),
        via: Vec::new(),
    }
}

/// A request from group `web` for `foo`, `foo >= 1.2`, `/bin/sh` or `foo.i686`.
fn want(wanted: &[&str]) -> Request {
    let wanted = (wanted.iter())
        .map(|text| {
            let capability = cap(text);
            Wanted {
                name: capability.name,
                constraint: capability.constraint,
                reason: named(),
                root: "web".into(),
            }
        })
        .collect();
    Request {
        wanted,
        ..Request::default()
    }
}

/// Resolves `wanted` over `packages` for `x86_64`: the chosen `name-evr.arch`, sorted.
fn resolve(packages: &[RpmPackage], wanted: &[&str]) -> Result<Vec<String>, ResolveError> {
    resolve_with(packages, &want(wanted))
}

fn resolve_with(packages: &[RpmPackage], request: &Request) -> Result<Vec<String>, ResolveError> {
    let universe = RpmUniverse::new(packages, "x86_64");
    let resolution = resolve_rpm(&universe, request)?;
    Ok(render(&universe, &resolution))
}

fn render(universe: &RpmUniverse, resolution: &Resolution) -> Vec<String> {
    (resolution.chosen.iter())
        .map(|c| universe.packages()[c.index].nevra())
        .collect()
}

fn failure(packages: &[RpmPackage], wanted: &[&str]) -> ResolveError {
    match resolve(packages, wanted) {
        Ok(chosen) => panic!("resolved to {chosen:?}"),
        Err(e) => e,
    }
}

#[test]
fn evr_comparison_follows_rpmdscompare() {
    let overlap = |p: Option<(Op, &str)>, r: (Op, &str)| overlaps(p, Some(r));
    // A missing epoch is 0: any epoch beats it.
    assert!(overlap(Some((Op::Eq, "1:1.0-1")), (Op::Ge, "2.0")));
    assert!(!overlap(Some((Op::Eq, "1.0-1")), (Op::Ge, "0:2.0")));
    // A side without a release does not compare releases.
    assert!(overlap(Some((Op::Eq, "1.2-3")), (Op::Eq, "1.2")));
    assert!(!overlap(Some((Op::Eq, "1.2-3")), (Op::Gt, "1.2")));
    assert!(overlap(Some((Op::Eq, "1.2")), (Op::Le, "1.2-1")));
    assert!(!overlap(Some((Op::Eq, "1.2-3")), (Op::Lt, "1.2-3")));
    // An unversioned provide satisfies a versioned require; ranges overlap.
    assert!(overlap(None, (Op::Ge, "9")));
    assert!(overlap(Some((Op::Ge, "2")), (Op::Lt, "3")));
    assert!(!overlap(Some((Op::Lt, "2")), (Op::Gt, "3")));
    // Tilde sorts before, caret after the version it suffixes.
    assert_eq!(compare("1.0~rc1-1", "1.0-1"), Ordering::Less);
    assert_eq!(compare("1.0^git1-1", "1.0-1"), Ordering::Greater);
    assert_eq!(compare("1.0^git1-1", "1.0.1-1"), Ordering::Less);
}

#[test]
fn requires_match_evr_ranges_with_epochs_and_missing_releases() {
    let packages = [
        requires(
            pkg("app", "1-1"),
            &["lib >= 2.0", "tool = 1.2", "old < 1:0"],
        ),
        pkg("lib", "1:1.0-1"),
        pkg("lib", "1.9-1"),
        pkg("tool", "1.2-7"),
        pkg("tool", "1.3-1"),
        pkg("old", "5-1"),
    ];
    let chosen = resolve(&packages, &["app"]).unwrap();
    assert_eq!(
        chosen,
        [
            "app-1-1.x86_64",
            "lib-1:1.0-1.x86_64",
            "old-5-1.x86_64",
            "tool-1.2-7.x86_64"
        ]
    );
    let error = failure(&packages, &["tool > 1.3"]);
    assert_eq!(error.chain, ["web", "tool > 1.3"]);
    assert_eq!(
        error.problem,
        Problem::Unavailable {
            available: vec!["1.2-7".into(), "1.3-1".into()]
        }
    );
}

#[test]
fn tilde_and_caret_versions_order_as_rpm() {
    let packages = [
        pkg("foo", "1.0~rc1-1"),
        pkg("foo", "1.0^git5-1"),
        requires(pkg("pre", "1-1"), &["foo < 1.0"]),
    ];
    let newest = Request {
        prefer: Prefer::Newest,
        ..want(&["foo"])
    };
    assert_eq!(
        resolve_with(&packages, &newest).unwrap(),
        ["foo-1.0^git5-1.x86_64"]
    );
    assert_eq!(
        resolve(&packages, &["pre"]).unwrap(),
        ["foo-1.0~rc1-1.x86_64", "pre-1-1.x86_64"]
    );
    assert_eq!(
        resolve(&packages, &["foo > 1.0"]).unwrap(),
        ["foo-1.0^git5-1.x86_64"]
    );
}

#[test]
fn file_requires_are_satisfied_by_the_owner_or_a_provider() {
    let packages = [
        requires(pkg("app", "1-1"), &["/bin/sh", "/usr/bin/perl"]),
        files(pkg("dash", "0.5-1"), &["/bin/dash", "/bin/sh"]),
        provides(pkg("perl", "5.36-1"), &["/usr/bin/perl"]),
    ];
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        ["app-1-1.x86_64", "dash-0.5-1.x86_64", "perl-5.36-1.x86_64"]
    );
    assert_eq!(
        resolve(&packages, &["/bin/sh"]).unwrap(),
        ["dash-0.5-1.x86_64"]
    );
    let error = failure(&packages, &["/bin/bash"]);
    assert_eq!(error.chain, ["web", "/bin/bash"]);
    assert!(matches!(error.problem, Problem::NoSuchPackage { .. }));
}

#[test]
fn rich_and_or_prefer_what_is_chosen_else_the_first_installable() {
    let packages = [
        requires(pkg("app", "1-1"), &["(a and (b >= 2 or c))", "(d or e)"]),
        pkg("a", "1-1"),
        pkg("b", "1-1"),
        pkg("c", "1-1"),
        pkg("d", "1-1"),
        pkg("e", "1-1"),
    ];
    // `b >= 2` cannot be installed, so `c`; nothing chosen gives `d or e`, so `d`.
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        [
            "a-1-1.x86_64",
            "app-1-1.x86_64",
            "c-1-1.x86_64",
            "d-1-1.x86_64"
        ]
    );
    // `e`, already wanted, satisfies `(d or e)`.
    assert_eq!(
        resolve(&packages, &["e", "app"]).unwrap(),
        [
            "a-1-1.x86_64",
            "app-1-1.x86_64",
            "c-1-1.x86_64",
            "e-1-1.x86_64"
        ]
    );
    // `a` alone does not make `(a and b)` hold: the first alternative is taken whole.
    let partial = [
        requires(pkg("app", "1-1"), &["a", "((a and b) or c)"]),
        pkg("a", "1-1"),
        pkg("b", "1-1"),
        pkg("c", "1-1"),
    ];
    assert_eq!(
        resolve(&partial, &["app"]).unwrap(),
        ["a-1-1.x86_64", "app-1-1.x86_64", "b-1-1.x86_64"]
    );
    let broken = [
        requires(pkg("app", "1-1"), &["(x or y > 1)"]),
        pkg("y", "1-1"),
    ];
    let error = failure(&broken, &["app"]);
    assert_eq!(error.chain, ["web", "app", "(x or y > 1)"]);
    let Problem::NoAlternative(reasons) = &error.problem else {
        panic!("{error}")
    };
    assert_eq!(reasons[0].0, "x");
    assert_eq!(
        reasons[1],
        (
            "y > 1".into(),
            Problem::Unavailable {
                available: vec!["1-1".into()]
            }
        )
    );
}

#[test]
fn rich_if_and_unless_settle_after_the_closure() {
    // `langpack if gui`: `gui` comes in later, through `extra`, yet still counts.
    let packages = [
        requires(
            pkg("app", "1-1"),
            &[
                "(langpack if gui)",
                "(tls if net else notls)",
                "(small unless big)",
                "(plugin unless gui else noplugin)",
                "extra",
            ],
        ),
        requires(pkg("extra", "1-1"), &["gui"]),
        pkg("gui", "1-1"),
        pkg("langpack", "1-1"),
        pkg("tls", "1-1"),
        pkg("notls", "1-1"),
        pkg("net", "1-1"),
        pkg("small", "1-1"),
        pkg("big", "1-1"),
        pkg("plugin", "1-1"),
        pkg("noplugin", "1-1"),
    ];
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        [
            "app-1-1.x86_64",
            "extra-1-1.x86_64",
            "gui-1-1.x86_64",
            "langpack-1-1.x86_64",
            "noplugin-1-1.x86_64",
            "notls-1-1.x86_64",
            "small-1-1.x86_64",
        ]
    );
    assert_eq!(
        resolve(&packages, &["net", "big", "app"]).unwrap(),
        [
            "app-1-1.x86_64",
            "big-1-1.x86_64",
            "extra-1-1.x86_64",
            "gui-1-1.x86_64",
            "langpack-1-1.x86_64",
            "net-1-1.x86_64",
            "noplugin-1-1.x86_64",
            "tls-1-1.x86_64",
        ]
    );
}

#[test]
fn rich_with_and_without_need_one_package_matching() {
    let packages = [
        requires(
            pkg("app", "1-1"),
            &[
                "(python3dist(foo) with python3dist(foo) >= 2)",
                "(font without font(bad))",
            ],
        ),
        provides(pkg("foo1", "1-1"), &["python3dist(foo) = 1"]),
        provides(pkg("foo2", "1-1"), &["python3dist(foo) = 2"]),
        provides(pkg("afont", "1-1"), &["font", "font(bad)"]),
        provides(pkg("bfont", "1-1"), &["font"]),
    ];
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        ["app-1-1.x86_64", "bfont-1-1.x86_64", "foo2-1-1.x86_64"]
    );
    let none = [
        requires(pkg("app", "1-1"), &["(font with font(good))"]),
        provides(pkg("afont", "1-1"), &["font"]),
    ];
    let error = failure(&none, &["app"]);
    assert_eq!(error.chain, ["web", "app", "(font with font(good))"]);
    assert_eq!(
        error.problem,
        Problem::Unavailable {
            available: vec!["afont-1-1.x86_64".into()]
        }
    );
}

#[test]
fn malformed_rich_dependencies_name_the_package_and_the_expression() {
    for (expression, why) in [
        ("(a and b or c)", "`and` and `or` at one level"),
        ("(a or b", "never closed"),
        ("(a else b)", "`else` follows only"),
        ("(a with (b or c))", "`with` takes capabilities"),
        ("(a >= )", "operator and no version"),
        ("(a xor b)", "`xor` is no operator"),
    ] {
        let packages = [requires(pkg("app", "1-1"), &[expression]), pkg("a", "1-1")];
        let error = failure(&packages, &["app"]);
        assert_eq!(error.chain, ["web", "app", expression]);
        let message = error.to_string();
        assert!(message.contains(why), "{expression}: {message}");
    }
}

#[test]
fn conflicts_plain_and_rich_give_both_chains() {
    let packages = [
        conflicts(pkg("postfix", "3.7-1"), &["mta"]),
        provides(requires(pkg("exim", "4.9-1"), &[]), &["mta"]),
        requires(pkg("mail", "1-1"), &["exim"]),
    ];
    let error = failure(&packages, &["postfix", "mail"]);
    assert_eq!(error.chain, ["web", "postfix"]);
    let Problem::Conflict(conflict) = &error.problem else {
        panic!("{error}")
    };
    assert_eq!(conflict.other, "exim (4.9-1)");
    assert!(conflict.provided);
    assert_eq!(conflict.other_chain, ["web", "mail", "exim"]);

    let rich = [
        conflicts(pkg("a", "1-1"), &["(b if c)"]),
        pkg("b", "1-1"),
        pkg("c", "1-1"),
    ];
    assert!(resolve(&rich, &["a", "b"]).is_ok());
    let error = failure(&rich, &["a", "b", "c"]);
    let Problem::Conflict(conflict) = &error.problem else {
        panic!("{error}")
    };
    assert_eq!(
        (conflict.relation.as_str(), conflict.other.as_str()),
        ("(b if c)", "b (1-1)")
    );
}

#[test]
fn obsoleted_packages_are_never_chosen_in_either_order() {
    let packages = [
        pkg("oldname", "1-1"),
        obsoletes(
            provides(pkg("newname", "2-1"), &["oldname = 2-1"]),
            &["oldname < 2"],
        ),
        requires(pkg("user", "1-1"), &["oldname"]),
    ];
    for wanted in [["newname", "user"], ["user", "newname"]] {
        assert_eq!(
            resolve(&packages, &wanted).unwrap(),
            ["newname-2-1.x86_64", "user-1-1.x86_64"]
        );
    }
    assert_eq!(
        resolve(&packages, &["oldname"]).unwrap(),
        ["newname-2-1.x86_64"]
    );
    let silent = [
        pkg("oldname", "1-1"),
        obsoletes(pkg("newname", "2-1"), &["oldname"]),
        requires(pkg("user", "1-1"), &["oldname"]),
    ];
    let error = failure(&silent, &["user"]);
    assert_eq!(error.chain, ["web", "user", "oldname"]);
    assert_eq!(
        error.problem,
        Problem::Obsoleted {
            by: vec!["newname-2-1.x86_64".into()]
        }
    );
}

#[test]
fn arch_is_the_flavors_then_noarch_and_another_only_when_named() {
    let packages = [
        requires(pkg("app", "1-1"), &["data", "libc"]),
        pkg("data.noarch", "1-1"),
        pkg("data.i686", "1-1"),
        pkg("libc", "2.38-1"),
        pkg("libc.i686", "2.38-1"),
        requires(pkg("only32.i686", "1-1"), &["libc"]),
    ];
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        ["app-1-1.x86_64", "data-1-1.noarch", "libc-2.38-1.x86_64"]
    );
    let error = failure(&packages, &["only32"]);
    assert_eq!(error.chain, ["web", "only32"]);
    assert_eq!(
        error.problem,
        Problem::WrongArch {
            found: vec!["only32.i686".into()]
        }
    );
    // Named, it comes in, and its own arch is taken first for what it requires.
    assert_eq!(
        resolve(&packages, &["only32.i686"]).unwrap(),
        ["libc-2.38-1.i686", "only32-1-1.i686"]
    );
    assert_eq!(
        resolve(&packages, &["libc.i686"]).unwrap(),
        ["libc-2.38-1.i686"]
    );
}

#[test]
fn rpmlib_requirements_come_from_rpms_own_list() {
    let packages = [
        requires(
            pkg("app", "1-1"),
            &[
                "rpmlib(CompressedFileNames) <= 3.0.4-1",
                "rpmlib(PayloadIsZstd) <= 5.4.18-1",
            ],
        ),
        requires(pkg("future", "1-1"), &["rpmlib(TimeTravel) <= 9-1"]),
        requires(pkg("newer", "1-1"), &["rpmlib(RichDependencies) >= 5-1"]),
    ];
    assert_eq!(resolve(&packages, &["app"]).unwrap(), ["app-1-1.x86_64"]);
    let error = failure(&packages, &["future"]);
    assert_eq!(error.chain, ["web", "future", "rpmlib(TimeTravel) <= 9-1"]);
    assert_eq!(error.problem, Problem::UnknownRpmlib);
    let error = failure(&packages, &["newer"]);
    assert_eq!(
        error.problem,
        Problem::Unavailable {
            available: vec!["4.12.0-1".into()]
        }
    );
}

#[test]
fn prefer_installed_takes_the_hosts_version_and_newest_the_highest() {
    let packages = [
        pkg("bash", "5.2-3"),
        installed(pkg("bash", "5.1-1")),
        pkg("bash", "5.0-9"),
    ];
    assert_eq!(
        resolve(&packages, &["bash"]).unwrap(),
        ["bash-5.1-1.x86_64"]
    );
    let newest = Request {
        prefer: Prefer::Newest,
        ..want(&["bash"])
    };
    assert_eq!(
        resolve_with(&packages, &newest).unwrap(),
        ["bash-5.2-3.x86_64"]
    );
    let avoid = Request {
        avoid: [1].into(),
        ..want(&["bash"])
    };
    assert_eq!(
        resolve_with(&packages, &avoid).unwrap(),
        ["bash-5.2-3.x86_64"]
    );
    let removed = Request {
        removes: vec!["bash".into()],
        ..want(&["bash"])
    };
    assert_eq!(
        resolve_with(&packages, &removed).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn a_version_chosen_first_gives_way_to_one_a_later_requirement_needs() {
    let packages = [
        requires(pkg("app", "1-1"), &["perl"]),
        requires(pkg("tool", "1-1"), &["perl >= 5.36-2"]),
        installed(pkg("perl", "5.36-1")),
        pkg("perl", "5.36-2"),
    ];
    assert_eq!(
        resolve(&packages, &["app", "tool"]).unwrap(),
        ["app-1-1.x86_64", "perl-5.36-2.x86_64", "tool-1-1.x86_64"]
    );
    assert_eq!(
        resolve(&packages, &["app"]).unwrap(),
        ["app-1-1.x86_64", "perl-5.36-1.x86_64"]
    );
}

#[test]
fn a_host_version_whose_own_requirement_fails_is_updated_in_either_order() {
    let packages = [
        requires(pkg("krb5-server", "2-1"), &["krb5-libs = 2-1"]),
        requires(pkg("cups", "1-1"), &["libgssapi"]),
        installed(requires(pkg("libgssapi", "1-1"), &["krb5-libs = 1-1"])),
        requires(pkg("libgssapi", "2-1"), &["krb5-libs = 2-1"]),
        installed(pkg("krb5-libs", "1-1")),
        pkg("krb5-libs", "2-1"),
    ];
    let updated = [
        "cups-1-1.x86_64",
        "krb5-libs-2-1.x86_64",
        "krb5-server-2-1.x86_64",
        "libgssapi-2-1.x86_64",
    ];
    assert_eq!(
        resolve(&packages, &["krb5-server", "cups"]).unwrap(),
        updated
    );
    assert_eq!(
        resolve(&packages, &["cups", "krb5-server"]).unwrap(),
        updated
    );
}

#[test]
fn a_host_version_another_package_conflicts_with_is_updated() {
    let packages = [
        conflicts(pkg("new", "2-1"), &["old < 2-1"]),
        requires(pkg("app", "1-1"), &["old"]),
        installed(pkg("old", "1-1")),
        pkg("old", "2-1"),
    ];
    assert_eq!(
        resolve(&packages, &["app", "new"]).unwrap(),
        ["app-1-1.x86_64", "new-2-1.x86_64", "old-2-1.x86_64"]
    );
}

#[test]
fn an_unsatisfiable_requirement_shows_the_chain_and_reasons() {
    let packages = [
        requires(pkg("nginx", "1.24-1"), &["openssl-libs >= 1:3.1"]),
        requires(pkg("openssl-libs", "1:3.0.9-1"), &[]),
        requires(pkg("site", "1-1"), &["nginx"]),
    ];
    let error = failure(&packages, &["site"]);
    assert_eq!(
        error.chain,
        ["web", "site", "nginx", "openssl-libs >= 1:3.1"]
    );
    assert_eq!(
        error.to_string(),
        "web -> site -> nginx -> openssl-libs >= 1:3.1: only 1:3.0.9-1 available"
    );
    let error = failure(&packages, &["ngnix"]);
    assert_eq!(
        error.problem,
        Problem::NoSuchPackage {
            suggestions: vec!["nginx".into()]
        }
    );

    let fine = [
        requires(pkg("nginx", "1.24-1"), &["pcre", "zlib"]),
        requires(pkg("pcre", "8-1"), &["zlib"]),
        pkg("zlib", "1.3-1"),
    ];
    let universe = RpmUniverse::new(&fine, "x86_64");
    let resolution = resolve_rpm(&universe, &want(&["nginx"])).unwrap();
    let reasons: Vec<&Reason> = resolution
        .chosen
        .iter()
        .map(|c: &Chosen| &c.reason)
        .collect();
    let dependency = |of: &str, also: &[&str]| Reason::Dependency {
        of: of.into(),
        also: also.iter().map(|name| name.to_string()).collect(),
    };
    // zlib was pulled in by nginx, and pcre requires it too.
    assert_eq!(
        reasons,
        [
            &named(),
            &dependency("nginx", &[]),
            &dependency("nginx", &["pcre"])
        ]
    );
    assert_eq!(resolution.chain(1), [0, 1]);
    assert_eq!(resolution.dependencies(0), [1, 2]);
}

#[test]
fn a_failure_names_the_request_its_chain_began_at() {
    let packages = [
        requires(pkg("nginx", "1.24-1"), &["openssl-libs >= 1:3.1"]),
        requires(pkg("openssl-libs", "1:3.0.9-1"), &[]),
        requires(pkg("site", "1-1"), &["nginx"]),
        conflicts(pkg("old", "1-1"), &["site"]),
    ];
    assert_eq!(
        failure(&packages, &["openssl-libs", "site"]).wanted,
        Some(1)
    );
    assert_eq!(failure(&packages, &["site", "ngnix"]).wanted, Some(1));
    assert_eq!(failure(&packages, &["nginx >= 2"]).wanted, Some(0));
    let fine = [pkg("site", "1-1"), conflicts(pkg("old", "1-1"), &["site"])];
    assert_eq!(failure(&fine, &["site", "old"]).wanted, Some(1));
}

#[test]
fn removes_that_keep_nothing_out_are_idle() {
    let packages = [
        requires(pkg("app", "1-1"), &["(mta or postfix)"]),
        provides(pkg("exim", "4-1"), &["mta"]),
        pkg("postfix", "3-1"),
        pkg("tool", "1-1"),
        pkg("emacs", "29-1"),
    ];
    let universe = RpmUniverse::new(&packages, "x86_64");
    let request = Request {
        removes: ["exim", "tool", "emacs", "emcas"]
            .map(String::from)
            .to_vec(),
        ..want(&["app", "tool"])
    };
    let resolution = resolve_rpm(&universe, &request).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["app-1-1.x86_64", "postfix-3-1.x86_64"]
    );
    assert_eq!(resolution.idle_removes, ["emacs", "emcas"]);
}

#[test]
fn the_input_order_does_not_change_the_result() {
    let packages = vec![
        requires(
            pkg("app", "1-1"),
            &["(lib or other)", "/bin/sh", "(extra if lib)"],
        ),
        provides(pkg("lib", "2-1"), &["other"]),
        pkg("lib", "1-1"),
        pkg("lib.noarch", "2-1"),
        pkg("other", "1-1"),
        files(pkg("dash", "1-1"), &["/bin/sh"]),
        files(pkg("busybox", "1-1"), &["/bin/sh"]),
        pkg("extra", "1-1"),
        pkg("extra", "1-2"),
    ];
    let expected = resolve(&packages, &["app"]).unwrap();
    let mut shuffled = packages.clone();
    // A fixed permutation per round: rotations and a reversal.
    for round in 0..packages.len() {
        shuffled.rotate_left(1);
        if round % 2 == 1 {
            shuffled.reverse();
        }
        assert_eq!(
            resolve(&shuffled, &["app"]).unwrap(),
            expected,
            "round {round}"
        );
    }
    assert_eq!(
        expected,
        [
            "app-1-1.x86_64",
            "busybox-1-1.x86_64",
            "extra-1-2.x86_64",
            "lib-2-1.x86_64"
        ]
    );
}
