//! The OpenAPI document of the routes: its description, security scheme and the links of
//! the lifecycle around what each route documents of itself; and the route serving it.

use std::sync::{Arc, OnceLock};

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::routing::{get, MethodRouter};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::deps::Deps;
use crate::ops;
use crate::routes::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Task orchestration API",
        description = "Tasks move Pending → Classified → InProgress → Completed | Failed; \
every change is published as a CloudEvent (see asyncapi.yaml). A task belongs to its \
creator: to anyone else it does not exist (404).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:3000", description = "the local server (`infra/local.sh up`)")),
    tags(
        (name = "tasks", description = "The task lifecycle"),
        (name = "dashboard", description = "Statistics of all tasks"),
        (name = "operations", description = "Consumers' queues, dead letters and latency objectives, and the outbox: for operators"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The JWT the HTTP API's authorizer verifies; its `sub` claim names the caller.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        scheme.description = Some(
            "A JWT from the stack's Cognito user pool; its `sub` claim names the caller. \
Locally the `X-User-Id` header (and `X-User-Scopes`) stands in for it."
                .to_owned(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The routes in the document's description, and the operations routes' documents
/// merged in: one API, though another function serves `/ops/…` in AWS.
pub(crate) fn documented_routes() -> OpenApiRouter<Deps> {
    let mut document = ApiDoc::openapi();
    document.merge(ops::OpsDoc::openapi());
    routes(document)
}

/// The OpenAPI document of the routes.
pub fn openapi() -> Document {
    with_links(documented_routes().split_for_parts().1)
}

/// The lifecycle as links between operations: what a client (or a stateful fuzzer) may
/// do next with the task an answer names.
pub(crate) fn with_links(mut document: Document) -> Document {
    let next: [(&str, &str, &[&str]); 3] = [
        ("createTask", "201", &["getTask", "classifyTask"]),
        ("classifyTask", "200", &["getTask", "startTask"]),
        ("startTask", "200", &["getTask", "completeTask", "failTask"]),
    ];
    for item in document.paths.paths.values_mut() {
        for operation in [item.get.as_mut(), item.post.as_mut()]
            .into_iter()
            .flatten()
        {
            let Some((_, status, targets)) = next
                .iter()
                .find(|(id, _, _)| operation.operation_id.as_deref() == Some(*id))
            else {
                continue;
            };
            if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
                for target in *targets {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", "$response.body#/id")
                        .build();
                    response.links.insert(target.to_string(), RefOr::T(link));
                }
            }
        }
    }
    document
}

/// `GET /openapi.json`: `document` with its links, written out when first asked for, not
/// on every cold start.
pub(crate) fn served<S: Clone + Send + Sync + 'static>(document: Document) -> MethodRouter<S> {
    let document = Arc::new(document);
    let json: Arc<OnceLock<String>> = Arc::default();
    get(move || {
        let json = json
            .get_or_init(|| {
                with_links(Document::clone(&document))
                    .to_pretty_json()
                    .expect("the document serialises")
            })
            .clone();
        async move {
            (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                json,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;
    use crate::testing::{fixture, local, request, send};

    #[tokio::test]
    async fn when_the_document_is_asked_should_serve_openapi_3_1_without_identity() {
        let f = fixture();

        let (status, _, document) =
            send(local(&f), request(None, Method::GET, "/openapi.json", "")).await;

        assert_eq!(status, 200);
        assert!(
            document["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            document["openapi"]
        );
        for path in [
            "/tasks",
            "/tasks/{id}",
            "/tasks/{id}/classify",
            "/dashboard/stats",
        ] {
            assert!(document["paths"][path].is_object(), "{path} is missing");
        }
        assert_eq!(document, serde_json::to_value(openapi()).unwrap());
    }
}
