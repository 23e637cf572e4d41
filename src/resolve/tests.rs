//! Resolver tests: every universe is built in code from `Package` values.

use super::*;
use crate::source::Origin;
use crate::source::dpkg::relation::parse_dependencies;

/// A pool package of the native arch with the given `Depends`.
fn pkg(name: &str, version: &str, depends: &str) -> Package {
    Package {
        depends: parse_dependencies(depends).unwrap(),
        ..Package::bare(name, version, "amd64", Origin::Pool)
    }
}

/// `name (<< version)`, built by hand: `Relation::parse` in `source::dpkg::relation` cuts
/// the text at the first `<` (meant for build profiles), so it rejects `<<` and `<=`.
fn lt(name: &str, version: &str) -> Relation {
    Relation {
        name: name.into(),
        arch: None,
        constraint: Some((Op::Lt, version.into())),
    }
}

fn rels(list: &str) -> Vec<Relation> {
    Relation::parse_list(list).unwrap()
}

fn provides(mut p: Package, list: &str) -> Package {
    p.provides = rels(list);
    p
}

fn arch(mut p: Package, arch: &str, multi_arch: MultiArch) -> Package {
    p.arch = arch.into();
    p.multi_arch = multi_arch;
    p
}

fn origin(mut p: Package, origin: Origin) -> Package {
    p.origin = origin;
    p
}

fn named() -> Reason {
    Reason::Named {
        group: "web".into(),
        via: Vec::new(),
    }
}

/// A request from group `web` for relations such as `lib (>= 2)` or `libc6:i386`.
fn want(wanted: &[&str]) -> Request {
    let wanted = wanted
        .iter()
        .map(|text| {
            let relation = Relation::parse(text).unwrap();
            let name = match relation.arch {
                Some(arch) => format!("{}:{arch}", relation.name),
                None => relation.name,
            };
            Wanted {
                name,
                constraint: relation.constraint,
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

/// The chosen packages as `name=version`, `name:arch` for foreign arches.
fn render(universe: &Universe, resolution: &Resolution) -> Vec<String> {
    (resolution.chosen.iter())
        .map(|c| {
            let p = &universe.packages()[c.index];
            format!("{}={}", universe.label(p), p.version)
        })
        .collect()
}

fn solve(packages: Vec<Package>, request: &Request) -> Vec<String> {
    let universe = Universe::new(&packages, "amd64");
    let resolution = resolve(&universe, request).unwrap();
    render(&universe, &resolution)
}

fn fail(packages: Vec<Package>, request: &Request) -> String {
    let universe = Universe::new(&packages, "amd64");
    resolve(&universe, request).unwrap_err().to_string()
}

fn reason_of(universe: &Universe, resolution: &Resolution, name: &str) -> Reason {
    (resolution.chosen.iter())
        .find(|c| universe.packages()[c.index].name == name)
        .map(|c| c.reason.clone())
        .unwrap()
}

/// A dependency pulled in first by `of`, with `also` depending on it too.
fn dependency_of(of: &str, also: &[&str]) -> Reason {
    Reason::Dependency {
        of: of.into(),
        also: also.iter().map(|name| name.to_string()).collect(),
    }
}

#[test]
fn closure_takes_pre_depends_first_and_walks_breadth_first() {
    let mut a = pkg("aa", "1", "dd");
    a.pre_depends = parse_dependencies("pp").unwrap();
    let packages = vec![
        a,
        pkg("dd", "1", "zz"),
        pkg("pp", "1", "zz"),
        pkg("zz", "1", ""),
    ];
    let universe = Universe::new(&packages, "amd64");
    let resolution = resolve(&universe, &want(&["aa"])).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["aa=1", "dd=1", "pp=1", "zz=1"]
    );
    // Pre-Depends came first, so `pp` pulled `zz` in; `dd` depends on it too.
    assert_eq!(
        reason_of(&universe, &resolution, "zz"),
        dependency_of("pp", &["dd"])
    );
    assert_eq!(reason_of(&universe, &resolution, "aa"), named());

    // Breadth-first: `y` is chosen for `a` before `b`'s `x | y` is looked at.
    let packages = vec![
        pkg("aa", "1", "bb, yy"),
        pkg("bb", "1", "xx | yy"),
        pkg("xx", "1", ""),
        pkg("yy", "1", ""),
    ];
    assert_eq!(solve(packages, &want(&["aa"])), ["aa=1", "bb=1", "yy=1"]);
}

#[test]
fn alternatives_take_the_first_satisfiable() {
    let packages = vec![
        pkg("aa", "1", "missing | old (>= 2) | bb | cc"),
        pkg("old", "1.0", ""),
        pkg("bb", "1", ""),
        pkg("cc", "1", ""),
    ];
    assert_eq!(solve(packages, &want(&["aa"])), ["aa=1", "bb=1"]);
}

#[test]
fn alternatives_prefer_one_the_host_has_installed() {
    let host = |p| origin(p, Origin::Installed);
    let packages = vec![
        host(pkg("init-system-helpers", "1", "usrmerge | usr-is-merged")),
        origin(pkg("usrmerge", "37", ""), Origin::AptList),
        host(pkg("usr-is-merged", "37", "")),
    ];
    assert_eq!(
        solve(packages, &want(&["init-system-helpers"])),
        ["init-system-helpers=1", "usr-is-merged=37"]
    );
    // Nothing installed: the first satisfiable alternative, as before.
    let packages = vec![
        pkg("aa", "1", "bb | cc"),
        pkg("bb", "1", ""),
        pkg("cc", "1", ""),
    ];
    assert_eq!(solve(packages, &want(&["aa"])), ["aa=1", "bb=1"]);
}

#[test]
fn alternatives_already_satisfied_choose_nothing() {
    let packages = vec![
        pkg("aa", "1", "bb | cc"),
        pkg("bb", "1", ""),
        pkg("cc", "1", ""),
    ];
    assert_eq!(solve(packages, &want(&["aa", "cc"])), ["aa=1", "cc=1"]);
}

#[test]
fn versions_follow_dpkg_ordering() {
    let mut a = pkg("aa", "1", "qux (>= 1.0-2)");
    a.depends
        .extend([vec![lt("foo", "1:0")], vec![lt("baz", "1.0")]]);
    let packages = vec![
        a,
        pkg("foo", "1.5", ""),
        pkg("foo", "2.0", ""),
        pkg("foo", "1:0.5", ""),
        pkg("baz", "1.0", ""),
        pkg("baz", "1.0~rc1", ""),
        pkg("qux", "1.0-1", ""),
        pkg("qux", "1.0-10", ""),
    ];
    assert_eq!(
        solve(packages, &want(&["aa"])),
        ["aa=1", "baz=1.0~rc1", "foo=2.0", "qux=1.0-10"]
    );

    let packages = vec![
        pkg("aa", "1", "bar (>= 1.0)"),
        pkg("bar", "1.0~rc1", ""),
        pkg("bar", "0.9", ""),
    ];
    assert_eq!(
        fail(packages, &want(&["aa"])),
        "web -> aa -> bar (>= 1.0): only 0.9, 1.0~rc1 available"
    );
}

#[test]
fn unsatisfiable_version_names_the_chain() {
    let packages = vec![
        pkg("nginx-light", "1.22", "libssl3 (>= 3.0.9)"),
        pkg("libssl3", "3.0.8", ""),
    ];
    assert_eq!(
        fail(packages, &want(&["nginx-light"])),
        "web -> nginx-light -> libssl3 (>= 3.0.9): only 3.0.8 available"
    );
    let packages = vec![pkg("libssl3", "3.0.8", "")];
    assert_eq!(
        fail(packages, &want(&["libssl3 (>= 3.0.9)"])),
        "web -> libssl3 (>= 3.0.9): only 3.0.8 available"
    );
}

#[test]
fn preference_is_origin_then_real_then_version_then_name() {
    let lib = |version, o| origin(pkg("lib", version, ""), o);
    let universe = || {
        vec![
            lib("1.1", Origin::Pool),
            lib("2.0", Origin::AptList),
            lib("1.0", Origin::Installed),
        ]
    };
    assert_eq!(solve(universe(), &want(&["lib"])), ["lib=1.0"]);
    assert_eq!(solve(universe(), &want(&["lib (>= 1.1)"])), ["lib=1.1"]);
    assert_eq!(solve(universe(), &want(&["lib (>> 1.1)"])), ["lib=2.0"]);

    // Among providers of one origin: highest version, then name.
    let packages = vec![
        provides(pkg("postfix", "3.7", ""), "mta"),
        provides(pkg("exim4", "4.96", ""), "mta"),
        provides(pkg("courier", "4.96", ""), "mta"),
    ];
    assert_eq!(solve(packages, &want(&["mta"])), ["courier=4.96"]);

    // A real package beats a provider of the same origin, whatever the versions...
    let packages = vec![
        provides(pkg("pp", "9", ""), "foo (= 9)"),
        pkg("foo", "1.0", ""),
    ];
    assert_eq!(solve(packages, &want(&["foo"])), ["foo=1.0"]);
    // ...but origin comes first.
    let packages = vec![
        origin(provides(pkg("pp", "9", ""), "foo"), Origin::Installed),
        pkg("foo", "1.0", ""),
    ];
    assert_eq!(solve(packages, &want(&["foo"])), ["pp=9"]);
}

/// `request` taking the newest version of each name.
fn newest(request: Request) -> Request {
    Request {
        prefer: Prefer::Newest,
        ..request
    }
}

#[test]
fn prefer_newest_takes_the_newest_version_of_each_name() {
    let lib = |version, o| origin(pkg("lib", version, ""), o);
    let universe = || {
        vec![
            origin(pkg("app", "1", "lib, tool"), Origin::Installed),
            lib("1.0", Origin::Installed),
            lib("1.1", Origin::Pool),
            lib("2.0", Origin::AptList),
            origin(pkg("tool", "3", ""), Origin::Installed),
            origin(pkg("tool", "3", ""), Origin::Pool),
            origin(pkg("tool", "2", ""), Origin::AptList),
        ]
    };
    // The default keeps the host's versions.
    assert_eq!(
        solve(universe(), &want(&["app"])),
        ["app=1", "lib=1.0", "tool=3"]
    );
    // Newest: apt's lib 2.0; tool 3 from the host, which beats the pool's equal one.
    let all = universe();
    let universe = Universe::new(&all, "amd64");
    let resolution = resolve(&universe, &newest(want(&["app"]))).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["app=1", "lib=2.0", "tool=3"]
    );
    let origin_of = |name: &str| {
        let chosen = resolution.chosen.iter();
        let p = chosen
            .map(|c| universe.packages()[c.index])
            .find(|p| p.name == name)
            .unwrap();
        p.origin
    };
    assert_eq!(origin_of("tool"), Origin::Installed);
    assert_eq!(origin_of("lib"), Origin::AptList);
}

#[test]
fn prefer_newest_never_trades_a_name_for_a_version() {
    // A virtual name goes to the provider the host has, at that provider's newest.
    let packages = vec![
        origin(provides(pkg("mawk", "1.3.4", ""), "awk"), Origin::Installed),
        origin(provides(pkg("mawk", "1.3.5", ""), "awk"), Origin::AptList),
        origin(provides(pkg("gawk", "1:5.2", ""), "awk"), Origin::AptList),
    ];
    assert_eq!(solve(packages, &newest(want(&["awk"]))), ["mawk=1.3.5"]);
    // An alternative the host has still beats an earlier one, at its newest version.
    let packages = vec![
        origin(
            pkg("helpers", "1", "usrmerge | usr-is-merged"),
            Origin::Installed,
        ),
        origin(pkg("usrmerge", "38", ""), Origin::AptList),
        origin(pkg("usr-is-merged", "37", ""), Origin::Installed),
        origin(pkg("usr-is-merged", "38", ""), Origin::AptList),
    ];
    assert_eq!(
        solve(packages, &newest(want(&["helpers"]))),
        ["helpers=1", "usr-is-merged=38"]
    );
}

#[test]
fn avoided_packages_give_way_to_an_archive_of_the_same_version_first() {
    let lib = |version, o| origin(pkg("lib", version, ""), o);
    // Index 0 is the host's lib 1.0, whose files were altered.
    let avoid = |request: Request| Request {
        avoid: [0].into(),
        ..request
    };
    let chosen = |packages: Vec<Package>, request: &Request| {
        let universe = Universe::new(&packages, "amd64");
        let resolution = resolve(&universe, request).unwrap();
        let p = universe.packages()[resolution.chosen[0].index];
        format!("{} {}", p.version, p.origin.as_str())
    };
    let host = || lib("1.0", Origin::Installed);
    let every = vec![
        host(),
        lib("2.0", Origin::AptList),
        lib("1.0", Origin::AptList),
        lib("1.0", Origin::Pool),
        lib("0.9", Origin::Pool),
    ];
    assert_eq!(chosen(every.clone(), &want(&["lib"])), "1.0 installed");
    assert_eq!(chosen(every.clone(), &avoid(want(&["lib"]))), "1.0 pool");
    let no_pool = every[..3].to_vec();
    assert_eq!(
        chosen(no_pool.clone(), &avoid(want(&["lib"]))),
        "1.0 aptlist"
    );
    // No archive of the host's version: the archive's candidate.
    let no_same = vec![
        host(),
        lib("2.0", Origin::AptList),
        lib("0.9", Origin::Pool),
    ];
    assert_eq!(chosen(no_same, &avoid(want(&["lib"]))), "0.9 pool");
    let no_same = vec![host(), lib("2.0", Origin::AptList)];
    assert_eq!(chosen(no_same, &avoid(want(&["lib"]))), "2.0 aptlist");
    // Nothing else: the avoided one, for the caller to refuse.
    assert_eq!(
        chosen(vec![host()], &avoid(want(&["lib"]))),
        "1.0 installed"
    );
    // Newest at the host's version: an archive of it rather than the host's files.
    let newest_avoided = newest(avoid(want(&["lib"])));
    assert_eq!(chosen(no_pool, &newest_avoided), "2.0 aptlist");
    let tie = vec![
        host(),
        lib("1.0", Origin::AptList),
        lib("0.9", Origin::Pool),
    ];
    assert_eq!(chosen(tie, &newest_avoided), "1.0 aptlist");
}

#[test]
fn preferences_are_words() {
    for word in Prefer::NAMES {
        assert_eq!(word.parse::<Prefer>().unwrap().as_str(), word);
    }
    assert_eq!(
        "latest".parse::<Prefer>().unwrap_err(),
        "`latest` is no preference: write `installed` or `newest`"
    );
}

#[test]
fn virtual_packages_respect_provided_versions() {
    let packages = vec![
        pkg("aa", "1", "mail-transport-agent, foo (>= 1.0)"),
        provides(pkg("postfix", "3.7", ""), "mail-transport-agent"),
        provides(pkg("pp", "5", ""), "foo (= 1.2)"),
    ];
    let universe = Universe::new(&packages, "amd64");
    let resolution = resolve(&universe, &want(&["aa"])).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["aa=1", "postfix=3.7", "pp=5"]
    );
    assert_eq!(
        reason_of(&universe, &resolution, "postfix"),
        dependency_of("aa", &[])
    );

    let packages = vec![
        pkg("aa", "1", "foo (>= 1.3)"),
        provides(pkg("pp", "5", ""), "foo (= 1.2)"),
    ];
    assert_eq!(
        fail(packages, &want(&["aa"])),
        "web -> aa -> foo (>= 1.3): only 1.2 (provided by pp) available"
    );
    let packages = vec![
        pkg("aa", "1", "bar (>= 1)"),
        provides(pkg("qq", "5", ""), "bar"),
    ];
    assert_eq!(
        fail(packages, &want(&["aa"])),
        "web -> aa -> bar (>= 1): only an unversioned bar (provided by qq) available"
    );
}

#[test]
fn one_version_per_name() {
    let packages = vec![
        pkg("aa", "1", "lib (= 1.0)"),
        pkg("bb", "1", "lib (>= 2)"),
        pkg("lib", "1.0", ""),
        pkg("lib", "2.0", ""),
    ];
    assert_eq!(
        fail(packages, &want(&["aa", "bb"])),
        "web -> bb -> lib (>= 2): lib (1.0) is already chosen, through web -> aa -> lib"
    );
    let packages = vec![pkg("lib", "1.0", ""), pkg("lib", "2.0", "")];
    assert_eq!(
        fail(packages, &want(&["lib (= 1.0)", "lib (>= 2)"])),
        "web -> lib (>= 2): lib (1.0) is already chosen, through web -> lib"
    );
}

#[test]
fn a_version_chosen_first_gives_way_to_one_a_later_relation_needs() {
    // The host's perl is older than a package from the lists needs: apt would upgrade it.
    let packages = || {
        vec![
            pkg("aa", "1", "perl"),
            pkg("bb", "1", "perl (>= 2), perl-base"),
            origin(pkg("perl", "1", "perl-base (= 1)"), Origin::Installed),
            pkg("perl", "2", "perl-base (= 2)"),
            origin(pkg("perl-base", "1", ""), Origin::Installed),
            pkg("perl-base", "2", ""),
        ]
    };
    assert_eq!(
        solve(packages(), &want(&["aa", "bb"])),
        ["aa=1", "bb=1", "perl=2", "perl-base=2"]
    );
    // Nothing learned: the host's versions stay when nothing needs another.
    assert_eq!(
        solve(packages(), &want(&["aa"])),
        ["aa=1", "perl=1", "perl-base=1"]
    );
    // A version one entry alone can use is taken even when avoided, and the failure is
    // the first pass's.
    let packages = vec![
        pkg("aa", "1", "lib (= 1)"),
        pkg("bb", "1", "lib (>= 2)"),
        origin(pkg("lib", "1", ""), Origin::Installed),
        pkg("lib", "2", ""),
    ];
    assert_eq!(
        fail(packages, &want(&["aa", "bb"])),
        "web -> bb -> lib (>= 2): lib (1) is already chosen, through web -> aa -> lib"
    );
}

#[test]
fn a_host_version_whose_own_relation_fails_is_upgraded_in_either_order() {
    // The lists' kdc needs their libkrb5-3; the host's libgssapi-krb5-2 needs the host's,
    // and the lists' libgssapi-krb5-2 theirs: apt upgrades both host packages.
    let packages = || {
        vec![
            pkg("krb5-kdc", "2", "libkrb5-3 (= 2)"),
            pkg("cups", "1", "libgssapi-krb5-2"),
            origin(
                pkg("libgssapi-krb5-2", "1", "libkrb5-3 (= 1)"),
                Origin::Installed,
            ),
            pkg("libgssapi-krb5-2", "2", "libkrb5-3 (= 2)"),
            origin(pkg("libkrb5-3", "1", ""), Origin::Installed),
            pkg("libkrb5-3", "2", ""),
        ]
    };
    let upgraded = ["cups=1", "krb5-kdc=2", "libgssapi-krb5-2=2", "libkrb5-3=2"];
    // The failing relation's own package is the host's older version.
    assert_eq!(solve(packages(), &want(&["krb5-kdc", "cups"])), upgraded);
    // The blocker was chosen by the host's older version.
    assert_eq!(solve(packages(), &want(&["cups", "krb5-kdc"])), upgraded);
    // Nothing learned when nothing fails.
    assert_eq!(
        solve(packages(), &want(&["cups"])),
        ["cups=1", "libgssapi-krb5-2=1", "libkrb5-3=1"]
    );
}

#[test]
fn a_host_version_another_package_breaks_is_upgraded() {
    let mut new = pkg("new", "2", "");
    new.breaks = vec![lt("old", "2")];
    let packages = vec![
        new,
        pkg("app", "1", "old"),
        origin(pkg("old", "1", ""), Origin::Installed),
        pkg("old", "2", ""),
    ];
    assert_eq!(
        solve(packages, &want(&["app", "new"])),
        ["app=1", "new=2", "old=2"]
    );
}

#[test]
fn unknown_names_get_suggestions() {
    let packages = vec![
        pkg("fop", "1", ""),
        pkg("fo0", "1", ""),
        pkg("bar", "1", ""),
        pkg("aa", "1", "nothing-like-it"),
    ];
    assert_eq!(
        fail(packages.clone(), &want(&["foo"])),
        "web -> foo: no such package (did you mean fo0, fop?)"
    );
    assert_eq!(
        fail(packages, &want(&["aa"])),
        "web -> aa -> nothing-like-it: no such package"
    );
    let packages = vec![
        pkg("nginx-light", "1", ""),
        provides(pkg("postfix", "1", ""), "mail-transport-agent"),
    ];
    assert_eq!(
        fail(packages, &want(&["nginx-lite", "mail-transport-agnt"])),
        "web -> nginx-lite: no such package (did you mean nginx-light?)"
    );
    let packages = vec![provides(pkg("postfix", "1", ""), "mail-transport-agent")];
    let universe = Universe::new(&packages, "amd64");
    assert_eq!(
        universe.nearest_names("mail-transport-agnt"),
        ["mail-transport-agent"]
    );
}

#[test]
fn failing_alternatives_list_every_reason() {
    let packages = vec![pkg("aa", "1", "xx | yy (>= 2)"), pkg("yy", "1.0", "")];
    assert_eq!(
        fail(packages, &want(&["aa"])),
        "web -> aa -> xx | yy (>= 2): no alternative can be installed: \
         xx: no such package; yy (>= 2): only 1.0 available"
    );
}

#[test]
fn removed_packages_are_never_chosen() {
    let request = |wanted: &[&str], removes: &[&str]| Request {
        removes: removes.iter().map(|r| r.to_string()).collect(),
        ..want(wanted)
    };
    let packages = vec![pkg("aa", "1", ""), pkg("xx", "1", "")];
    assert_eq!(solve(packages, &request(&["aa", "xx"], &["xx"])), ["aa=1"]);

    let packages = vec![
        pkg("aa", "1", "xx | yy"),
        pkg("xx", "1", ""),
        pkg("yy", "1", ""),
    ];
    assert_eq!(
        solve(packages, &request(&["aa"], &["xx"])),
        ["aa=1", "yy=1"]
    );

    let packages = vec![pkg("aa", "1", "xx"), pkg("xx", "1", "")];
    assert_eq!(
        fail(packages, &request(&["aa"], &["xx"])),
        "web -> aa -> xx: removed by the group"
    );

    let packages = vec![
        pkg("aa", "1", "mta"),
        provides(pkg("postfix", "3.7", ""), "mta"),
        provides(pkg("exim4", "4.96", ""), "mta"),
    ];
    assert_eq!(
        fail(packages, &request(&["aa"], &["postfix", "exim4"])),
        "web -> aa -> mta: only provided by removed packages (exim4, postfix)"
    );
}

#[test]
fn removes_that_keep_nothing_out_are_idle() {
    let essential = |mut p: Package| {
        p.essential = true;
        p
    };
    let packages = vec![
        pkg("aa", "1", "xx | yy"),
        pkg("xx", "1", ""),
        pkg("yy", "1", ""),
        pkg("bb", "1", ""),
        essential(pkg("sed", "4", "")),
        pkg("emacs", "29", ""),
    ];
    let universe = Universe::new(&packages, "amd64");
    let request = Request {
        essential: true,
        // Kept out: a wanted name, an alternative, an essential package. Idle: a
        // package nothing asks for, one that does not exist, and a repeat of it.
        removes: ["bb", "xx", "sed", "emacs", "emcas", "emacs"]
            .map(String::from)
            .to_vec(),
        ..want(&["aa", "bb"])
    };
    let resolution = resolve(&universe, &request).unwrap();
    assert_eq!(render(&universe, &resolution), ["aa=1", "yy=1"]);
    assert_eq!(resolution.idle_removes, ["emacs", "emcas"]);
}

#[test]
fn a_failure_names_the_request_its_chain_began_at() {
    let packages = || {
        vec![
            pkg("aa", "1", ""),
            pkg("bb", "1", "cc"),
            pkg("cc", "1", "libssl3 (>= 3.0.9)"),
            pkg("libssl3", "3.0.8", ""),
        ]
    };
    let all = packages();
    let universe = Universe::new(&all, "amd64");
    // Deep in the chain, the request that began it.
    let err = resolve(&universe, &want(&["aa", "bb"])).unwrap_err();
    assert_eq!(err.wanted, Some(1));
    assert_eq!(
        err.to_string(),
        "web -> bb -> cc -> libssl3 (>= 3.0.9): only 3.0.8 available"
    );
    let err = resolve(&universe, &want(&["aa", "ab"])).unwrap_err();
    assert_eq!(err.wanted, Some(1));
    let err = resolve(&universe, &want(&["aa (>= 2)"])).unwrap_err();
    assert_eq!((err.wanted, err.chain.len()), (Some(0), 2));
    // A conflict names the chain of the package declaring it.
    let mut clash = pkg("dd", "1", "");
    clash.conflicts = rels("aa");
    let all = [packages(), vec![clash]].concat();
    let universe = Universe::new(&all, "amd64");
    let err = resolve(&universe, &want(&["aa", "dd"])).unwrap_err();
    assert_eq!(err.wanted, Some(1), "{err}");
    // What the essential packages bring began at no request.
    let mut dpkg = pkg("dpkg", "1", "missing");
    dpkg.essential = true;
    let all = [dpkg];
    let universe = Universe::new(&all, "amd64");
    let request = Request {
        essential: true,
        ..want(&[])
    };
    assert_eq!(resolve(&universe, &request).unwrap_err().wanted, None);
}

#[test]
fn conflicts_and_breaks_are_errors() {
    let mta = |name: &str, version: &str| {
        let mut p = provides(pkg(name, version, ""), "mail-transport-agent");
        p.conflicts = rels("mail-transport-agent");
        p
    };
    let packages = vec![
        mta("exim4", "4.96"),
        pkg("mutt", "2", "postfix"),
        mta("postfix", "3.7"),
    ];
    assert_eq!(
        fail(packages, &want(&["exim4", "mutt"])),
        "web -> exim4: conflicts: exim4 (4.96) conflicts with mail-transport-agent, \
         provided by postfix (3.7), which comes from web -> mutt -> postfix"
    );

    let mut a = pkg("aa", "1.0", "");
    a.breaks = vec![lt("bb", "2.0")];
    let packages = vec![a.clone(), pkg("bb", "1.5", "")];
    assert_eq!(
        fail(packages, &want(&["aa", "bb"])),
        "web -> aa: breaks: aa (1.0) breaks bb (<< 2.0), matched by bb (1.5), \
         which comes from web -> bb"
    );
    let packages = vec![a, pkg("bb", "2.0", "")];
    assert_eq!(solve(packages, &want(&["aa", "bb"])), ["aa=1.0", "bb=2.0"]);
}

#[test]
fn self_conflicts_are_fine() {
    let mut postfix = provides(pkg("postfix", "3.7", ""), "mail-transport-agent");
    postfix.conflicts = rels("mail-transport-agent, postfix");
    let packages = vec![pkg("mutt", "2", "mail-transport-agent"), postfix];
    assert_eq!(solve(packages, &want(&["mutt"])), ["mutt=2", "postfix=3.7"]);
}

#[test]
fn cycles_are_resolved_and_reported() {
    let packages = vec![
        pkg("top", "1", "aa"),
        pkg("aa", "1", "bb"),
        pkg("bb", "1", "cc"),
        pkg("cc", "1", "aa"),
    ];
    let universe = Universe::new(&packages, "amd64");
    let resolution = resolve(&universe, &want(&["top"])).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["aa=1", "bb=1", "cc=1", "top=1"]
    );
    assert_eq!(resolution.cycles(), [vec![1, 2, 3]]);
    assert_eq!(resolution.edges(), [(1, 2), (2, 3), (3, 1), (0, 1)]);
    assert_eq!(resolution.dependents(1), [3, 0]);
    assert_eq!(resolution.dependencies(3), [1]);
    assert_eq!(resolution.chain(3), [0, 1, 2, 3]);
    assert_eq!(resolution.position(0), Some(3));
    assert_eq!(resolution.chain(99), Vec::<usize>::new());
}

#[test]
fn multi_arch_rules() {
    use MultiArch::{Allowed, Foreign, Same};
    let foo = |multi_arch| arch(pkg("foo", "1", ""), "i386", multi_arch);
    assert_eq!(
        fail(
            vec![pkg("aa", "1", "foo"), foo(MultiArch::No)],
            &want(&["aa"])
        ),
        "web -> aa -> foo: not available for this architecture (found foo:i386)"
    );
    assert_eq!(
        solve(vec![pkg("aa", "1", "foo"), foo(Foreign)], &want(&["aa"])),
        ["aa=1", "foo:i386=1"]
    );
    assert_eq!(
        solve(
            vec![pkg("aa", "1", "foo:any"), foo(Allowed)],
            &want(&["aa"])
        ),
        ["aa=1", "foo:i386=1"]
    );
    assert!(
        fail(vec![pkg("aa", "1", "foo:any"), foo(Same)], &want(&["aa"]))
            .ends_with("not available for this architecture (found foo:i386)")
    );
    assert_eq!(
        solve(
            vec![pkg("aa", "1", "foo:i386"), foo(MultiArch::No)],
            &want(&["aa"])
        ),
        ["aa=1", "foo:i386=1"]
    );

    // An `all` package's relations are native; a foreign package's are its own arch,
    // and `Multi-Arch: same` instances of several arches are chosen side by side.
    let libc = |a| arch(pkg("libc6", "2.36", ""), a, Same);
    let packages = vec![
        arch(pkg("tool", "1", "libc6"), "all", MultiArch::No),
        arch(pkg("libx", "1", "libc6"), "i386", Same),
        libc("i386"),
        libc("amd64"),
    ];
    assert_eq!(
        solve(packages, &want(&["tool", "libx:i386"])),
        ["libc6=2.36", "libc6:i386=2.36", "libx:i386=1", "tool=1"]
    );

    // Without `Multi-Arch: same`, dpkg installs one arch of a name.
    let packages = vec![
        pkg("aa", "1", "foo"),
        arch(pkg("bb", "1", "foo"), "i386", Same),
        pkg("foo", "1", ""),
        foo(MultiArch::No),
    ];
    assert_eq!(
        fail(packages, &want(&["aa", "bb:i386"])),
        "web -> bb:i386 -> foo: foo (1) is already chosen, through web -> aa -> foo"
    );
}

#[test]
fn essential_packages_and_their_closure() {
    let essential = |mut p: Package| {
        p.essential = true;
        p
    };
    let packages = || {
        vec![
            essential(pkg("dpkg", "1.21", "tar")),
            essential(arch(pkg("base-files", "12", ""), "all", MultiArch::No)),
            essential(arch(pkg("foreign", "1", ""), "i386", MultiArch::No)),
            essential(pkg("bash", "5.2", "")),
            essential(pkg("bash", "5.1", "")),
            pkg("tar", "1.34", ""),
            pkg("web-app", "1", "dpkg"),
        ]
    };
    let all = packages();
    let universe = Universe::new(&all, "amd64");
    let request = Request {
        essential: true,
        removes: vec!["base-files".into()],
        ..want(&["web-app", "bash (= 5.1)"])
    };
    let resolution = resolve(&universe, &request).unwrap();
    assert_eq!(
        render(&universe, &resolution),
        ["bash=5.1", "dpkg=1.21", "tar=1.34", "web-app=1"]
    );
    assert_eq!(reason_of(&universe, &resolution, "bash"), named());
    assert_eq!(reason_of(&universe, &resolution, "dpkg"), Reason::Essential);
    assert_eq!(
        reason_of(&universe, &resolution, "tar"),
        dependency_of("dpkg", &[])
    );

    assert_eq!(solve(packages(), &want(&["tar"])), ["tar=1.34"]);

    let packages = vec![essential(pkg("dpkg", "1.21", "missing"))];
    let request = Request {
        essential: true,
        ..Request::default()
    };
    assert_eq!(
        fail(packages, &request),
        "essential -> dpkg -> missing: no such package"
    );
}

#[test]
fn wanted_names_may_be_virtual() {
    let packages = vec![provides(pkg("postfix", "3.7", ""), "mail-transport-agent")];
    let universe = Universe::new(&packages, "amd64");
    let resolution = resolve(&universe, &want(&["mail-transport-agent"])).unwrap();
    assert_eq!(render(&universe, &resolution), ["postfix=3.7"]);
    assert_eq!(resolution.chosen[0].reason, named());
}

/// Renders everything a resolution says by name, so input order cannot show through.
fn canonical(universe: &Universe, resolution: &Resolution) -> Vec<String> {
    let name = |i: usize| {
        let p = &universe.packages()[i];
        format!("{}:{}={}/{}", p.name, p.arch, p.version, p.origin.as_str())
    };
    let chosen = (resolution.chosen.iter()).map(|c| format!("{} {}", name(c.index), c.reason));
    let edges =
        (resolution.edges().into_iter()).map(|(a, b)| format!("{} -> {}", name(a), name(b)));
    chosen.chain(edges).collect()
}

#[test]
fn result_does_not_depend_on_universe_order() {
    let packages = vec![
        pkg(
            "app",
            "1",
            "lib (>= 1), mta | mail-transport-agent, tool | other-tool, helper",
        ),
        arch(pkg("helper", "1", ""), "i386", MultiArch::Foreign),
        arch(pkg("helper", "1", ""), "amd64", MultiArch::Foreign),
        arch(pkg("helper", "1", ""), "amd64", MultiArch::Foreign),
        pkg("lib", "1.0", "libc"),
        origin(pkg("lib", "1.2", "libc"), Origin::Installed),
        origin(pkg("lib", "2.0", "libc"), Origin::AptList),
        provides(pkg("postfix", "3.7", "libc"), "mail-transport-agent"),
        provides(pkg("exim4", "4.96", "libc"), "mail-transport-agent"),
        provides(pkg("sendmail", "4.96", "libc"), "mail-transport-agent"),
        provides(pkg("other-tool", "2", ""), "tool"),
        provides(pkg("alt-tool", "2", ""), "tool"),
        arch(pkg("libc", "2.36", "app"), "amd64", MultiArch::Same),
        arch(pkg("libc", "2.36", ""), "i386", MultiArch::Same),
        pkg("libc", "2.37", ""),
    ];
    let reference = {
        let universe = Universe::new(&packages, "amd64");
        let resolution = resolve(&universe, &want(&["app"])).unwrap();
        canonical(&universe, &resolution)
    };
    assert!(reference.iter().any(|l| l.starts_with("exim4:")));
    assert!(
        reference
            .iter()
            .any(|l| l.starts_with("lib:amd64=1.2/installed"))
    );
    assert!(reference.iter().any(|l| l.starts_with("alt-tool:")));
    assert!(reference.iter().any(|l| l.starts_with("helper:amd64=")));
    for seed in 1..packages.len() {
        let mut shuffled = packages.clone();
        shuffled.rotate_left(seed);
        if seed % 2 == 0 {
            shuffled.reverse();
        }
        shuffled.swap(0, seed);
        let universe = Universe::new(&shuffled, "amd64");
        let resolution = resolve(&universe, &want(&["app"])).unwrap();
        assert_eq!(canonical(&universe, &resolution), reference, "seed {seed}");
    }
}

#[test]
fn a_refused_stanza_fails_only_a_resolution_that_names_its_package() {
    let mut base = pkg("base", "1", "");
    base.essential = true;
    let packages = vec![
        pkg("app", "1", "lib | junk"),
        pkg("lib", "1", ""),
        pkg("tool", "1", ""),
        base,
    ];
    let universe = || {
        Universe::new(&packages, "amd64").refusing([
            ("junk", "lists:3: package junk: bad".to_string()),
            ("junk", "lists:9: a later one".to_string()),
            ("unused", "lists:5: package unused: bad".to_string()),
        ])
    };
    let solved = resolve(&universe(), &want(&["tool"])).unwrap();
    assert_eq!(render(&universe(), &solved), ["tool=1"]);
    let failed = |request: &Request| resolve(&universe(), request).unwrap_err().to_string();
    assert_eq!(
        failed(&want(&["app"])),
        "web -> app -> lib | junk: lists:3: package junk: bad"
    );
    assert_eq!(
        failed(&want(&["junk"])),
        "web -> junk: lists:3: package junk: bad"
    );
    // Chosen without being looked up by name: as essential.
    let essential = Request {
        essential: true,
        ..want(&["tool"])
    };
    let refused = Universe::new(&packages, "amd64").refusing([("base", "bad".to_string())]);
    assert_eq!(
        resolve(&refused, &essential).unwrap_err().to_string(),
        "essential -> base: bad"
    );
}
