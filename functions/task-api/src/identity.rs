//! Who is calling. In AWS, the HTTP API's JWT authorizer verified a token and passes its
//! claims: the caller is the `sub` claim, its scopes the `scope` claim. The Lambda never
//! reads identity from headers; only the local server does, standing in for the
//! authorizer ([`local_headers`]).

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use shared::service::Caller;

use crate::errors::ApiError;
use crate::middleware::RequestId;

/// Header naming the caller locally, in place of the JWT's `sub` claim.
pub const USER_HEADER: &str = "x-user-id";
/// Header listing the caller's scopes locally (space-separated), in place of the JWT's
/// `scope` claim.
pub const SCOPES_HEADER: &str = "x-user-scopes";

/// A verified caller: its id and the scopes its token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub scopes: Vec<String>,
}

impl Identity {
    /// `None` for a blank id: no identity at all.
    pub fn new(user_id: &str, scopes: &str) -> Option<Identity> {
        let user_id = user_id.trim();
        (!user_id.is_empty()).then(|| Identity {
            user_id: user_id.to_owned(),
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        })
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|held| held == scope)
    }
}

/// The identity the JWT authorizer passed with a Lambda request, if any.
pub fn from_authorizer<B>(request: &axum::http::Request<B>) -> Option<Identity> {
    let RequestContext::ApiGatewayV2(context) = request.request_context_ref()? else {
        return None;
    };
    let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
    let sub = jwt.claims.get("sub")?;
    let mut identity = Identity::new(sub, jwt.claims.get("scope").map_or("", String::as_str))?;
    // Routes that require scopes get them listed by the authorizer as well.
    for scope in jwt.scopes.iter().flatten() {
        if !identity.has_scope(scope) {
            identity.scopes.push(scope.clone());
        }
    }
    Some(identity)
}

/// The identity the local headers name, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<Identity> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    Identity::new(
        header(USER_HEADER)?,
        header(SCOPES_HEADER).unwrap_or_default(),
    )
}

/// Middleware of the Lambda binary: the authorizer's claims, and nothing else, name the
/// caller.
pub async fn authorizer(mut request: Request, next: Next) -> Response {
    request.extensions_mut().remove::<Identity>();
    if let Some(identity) = from_authorizer(&request) {
        request.extensions_mut().insert(identity);
    }
    next.run(request).await
}

/// Middleware of the local server: `X-User-Id` and `X-User-Scopes` name the caller.
pub async fn local_headers(mut request: Request, next: Next) -> Response {
    request.extensions_mut().remove::<Identity>();
    if let Some(identity) = from_headers(request.headers()) {
        request.extensions_mut().insert(identity);
    }
    next.run(request).await
}

/// The caller of a route that needs one: 401 without an identity.
pub struct Authenticated(pub Identity, pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)?;
        let request_id = parts.extensions.get::<RequestId>().map(|id| id.0.clone());
        let caller = Caller {
            user_id: identity.user_id.clone(),
            request_id,
        };
        Ok(Authenticated(identity, caller))
    }
}
