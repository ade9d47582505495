//! A routing helper the capabilities share: the indication program's paths answer with and without the trailing
//! slash.

use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// Registers documented routes and, for each path ending in `/`, the same handlers without it.
/// The alias stays out of the docs.
pub fn with_slash_alias<S>(
    router: OpenApiRouter<S>,
    routes: UtoipaMethodRouter<S>,
) -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (_, paths, method_router) = &routes;
    let aliases: Vec<String> = paths
        .paths
        .keys()
        .filter(|p| p.len() > 1 && p.ends_with('/'))
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect();
    let method_router = method_router.clone();
    let mut router = router.routes(routes);
    for alias in aliases {
        router = router.route(&alias, method_router.clone());
    }
    router
}
