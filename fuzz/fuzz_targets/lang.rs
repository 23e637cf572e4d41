//! The KDL front end: group files, flavor files, flag expressions and canonical flavor
//! strings. The first byte picks the parser, the rest is the text (lossy UTF-8, as a
//! file read with a bad byte would be refused before parsing anyway).
//!
//! Checked: no panic, however the text; an error's span lies inside the text and
//! renders with miette as the CLI renders it; what parses keeps its invariants
//! (conditions re-parse to the same expression, `file` paths are absolute and
//! normalised, a flavor's canonical string parses back to the same flavor, a term's
//! offset points at its name).

#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use appliance::lang::{
    Expr, Flavor, Known, LangError, Statement, parse_flavor_text, parse_group_text,
};
use appliance_fuzz::normalised;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => group(&text),
        1 => flavor(&text),
        2 => expression(&text),
        _ => canonical(&text),
    }
});

/// Flavors the conditions of a parsed group are evaluated for.
fn flavors() -> Vec<Flavor> {
    let make = |arch: &str, flags: &[(&str, bool)]| Flavor {
        name: None,
        arch: arch.to_string(),
        flags: flags
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
        format: None,
    };
    vec![
        make("x86_64", &[("kernel", true), ("xen", true)]),
        make("aarch64", &[("kernel", false), ("openvz", true)]),
        make("i686", &[]),
    ]
}

fn group(text: &str) {
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    let known = Known {
        flags: set(&["kernel", "xen", "kvm", "openvz"]),
        flavors: set(&["xen", "kvm", "openvz"]),
        groups: set(&["base", "web", "db"]),
    };
    match parse_group_text(Path::new("/ws/groups/web.kdl"), text, &known) {
        Ok(def) => {
            assert_eq!(def.name, "web");
            let flavors = flavors();
            walk(&def.statements, &flavors);
        }
        Err(err) => rendered(&err, text),
    }
}

/// Checks every statement, recursing into `when` bodies.
fn walk(statements: &[Statement], flavors: &[Flavor]) {
    for statement in statements {
        match statement {
            Statement::When { condition, body } => {
                let again = Expr::parse(&condition.text).expect("a stored condition re-parses");
                assert_eq!(again, condition.expr, "condition {:?}", condition.text);
                for f in flavors {
                    condition.expr.eval(f);
                }
                walk(body, flavors);
            }
            Statement::Package { name, .. } => assert!(!name.is_empty()),
            Statement::File(file) => {
                assert!(
                    normalised(&file.path) && file.path != "/",
                    "{:?}",
                    file.path
                );
                assert!(file.mode <= 0o7777, "mode {:o}", file.mode);
            }
            Statement::Overlay(overlay) => {
                assert!(overlay.path.is_absolute(), "{}", overlay.path.display())
            }
            _ => {}
        }
    }
}

fn flavor(text: &str) {
    match parse_flavor_text(Path::new("/ws/flavors/xen.kdl"), text) {
        Ok(f) => {
            assert_eq!(f.name.as_deref(), Some("xen"));
            let back = Flavor::parse_canonical(&f.canonical()).expect("a canonical string parses");
            assert_eq!((back.arch, back.flags), (f.arch, f.flags));
        }
        Err(err) => rendered(&err, text),
    }
}

fn expression(text: &str) {
    match Expr::parse(text) {
        Ok(expr) => {
            for term in expr.terms() {
                assert_eq!(
                    text.get(term.offset..term.offset + term.name.len()),
                    Some(term.name.as_str()),
                    "term offset in {text:?}"
                );
            }
            for f in flavors() {
                expr.eval(&f);
            }
        }
        Err(e) => {
            assert!(e.offset + e.len <= text.len(), "error span in {text:?}");
            assert!(text.is_char_boundary(e.offset), "error offset in {text:?}");
            assert!(!e.message.is_empty());
        }
    }
}

fn canonical(text: &str) {
    match Flavor::parse_canonical(text) {
        Ok(f) => {
            let back = Flavor::parse_canonical(&f.canonical()).expect("a canonical string parses");
            assert_eq!(back, f, "{text:?}");
        }
        Err(err) => {
            // Only its message: a canonical string has no file to point into.
            let _ = err.to_string();
        }
    }
}

/// An error of a file's text: its span lies in the text, and it renders as the CLI
/// renders it.
fn rendered(err: &LangError, text: &str) {
    let message = err.to_string();
    assert!(!message.is_empty());
    if let Some(diag) = err.diag() {
        let span = diag.span;
        assert!(
            span.offset() + span.len() <= text.len(),
            "span {span:?} outside a text of {} bytes: {message}",
            text.len()
        );
        assert!(diag.location.line >= 1 && diag.location.column >= 1);
    }
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    let _ = handler.render_report(&mut out, err);
}
