//! Finding a workspace and turning its groups and flavors into recipes.
