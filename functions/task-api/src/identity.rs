//! Who is calling: the `sub` claim the HTTP API's JWT authorizer verified.
//! The Lambda never reads identity from headers; only the local server does, standing in
//! for the authorizer.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// The caller's `sub` claim, when the authorizer passed one.
pub fn from_authorizer(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()?
            .claims
            .get("sub")
            .map(|sub| sub.trim().to_owned())
            .filter(|sub| !sub.is_empty()),
        _ => None,
    }
}
