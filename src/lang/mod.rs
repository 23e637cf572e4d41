//! The group and flavor language (KDL v2).
