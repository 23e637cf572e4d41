//! rpm's version relations: EVR order, range overlap, and how rpm prints a relation.

use std::cmp::Ordering;

use rpm_version::Evr;

use crate::source::Op;
use crate::source::rpm::Capability;

/// Orders two EVRs as rpm 4.18's `rpmverCmp`: a missing epoch is 0, and releases are
/// compared only when both sides have one (`foo >= 1.2` takes every `1.2-*`).
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (a_epoch, a_version, a_release) = Evr::parse_values(a);
    let (b_epoch, b_version, b_release) = Evr::parse_values(b);
    let (a_release, b_release) = if a_release.is_empty() || b_release.is_empty() {
        ("", "")
    } else {
        (a_release, b_release)
    };
    Evr::new(a_epoch, a_version, a_release).cmp(&Evr::new(b_epoch, b_version, b_release))
}

/// Whether a provided range meets a required one, as rpm's `rpmdsCompare`: either side
/// without a version always does (an unversioned provide satisfies `foo >= 2`).
pub(super) fn overlaps(provided: Option<(Op, &str)>, required: Option<(Op, &str)>) -> bool {
    let (Some((p_op, p_evr)), Some((r_op, r_evr))) = (provided, required) else {
        return true;
    };
    let (p, r) = (Sense::of(p_op), Sense::of(r_op));
    match compare(p_evr, r_evr) {
        Ordering::Less => p.greater || r.less,
        Ordering::Greater => p.less || r.greater,
        Ordering::Equal => (p.equal && r.equal) || (p.less && r.less) || (p.greater && r.greater),
    }
}

/// The bits of rpm's `RPMSENSE_LESS | EQUAL | GREATER` an operator sets.
struct Sense {
    less: bool,
    equal: bool,
    greater: bool,
}

impl Sense {
    fn of(op: Op) -> Sense {
        let (less, equal, greater) = match op {
            Op::Lt => (true, false, false),
            Op::Le => (true, true, false),
            Op::Eq => (false, true, false),
            Op::Ge => (false, true, true),
            Op::Gt => (false, false, true),
        };
        Sense {
            less,
            equal,
            greater,
        }
    }
}

/// An operator as rpm writes it (`<` and `>`, where Debian writes `<<` and `>>`).
pub(super) fn op_text(op: Op) -> &'static str {
    match op {
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Eq => "=",
        Op::Ge => ">=",
        Op::Gt => ">",
    }
}

/// A capability as rpm prints it: `foo >= 1.2`.
pub(super) fn relation_text(capability: &Capability) -> String {
    match &capability.constraint {
        Some((op, evr)) => format!("{} {} {evr}", capability.name, op_text(*op)),
        None => capability.name.clone(),
    }
}

/// The constraint borrowed, as [`overlaps`] takes it.
pub(super) fn range(capability: &Capability) -> Option<(Op, &str)> {
    (capability.constraint.as_ref()).map(|(op, evr)| (*op, evr.as_str()))
}
