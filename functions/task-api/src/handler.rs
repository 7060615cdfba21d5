//! Adapts HTTP requests to the task use cases and their results to responses.

use lambda_http::http::header::LOCATION;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use orchestration::events::traceparent;
use orchestration::service::{Caller, TaskService};
use serde_json::json;

use crate::errors::ApiError;
use crate::requests::{self, CreateTask};
use crate::responses::{self, TaskView};
use crate::routes::{route, Route};

/// What the handler needs, built once per process.
#[derive(Clone)]
pub struct Deps {
    pub tasks: TaskService,
}

/// Serves one request for the caller `user_id` (the verified identity, if any).
pub async fn handle(deps: &Deps, user_id: Option<&str>, request: Request) -> Response<Body> {
    match serve(deps, user_id, &request).await {
        Ok(response) => response,
        Err(err) => responses::error(&err),
    }
}

async fn serve(
    deps: &Deps,
    user_id: Option<&str>,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let path = match request.raw_http_path() {
        "" => request.uri().path(),
        raw => raw,
    };
    let route = route(request.method(), path)?;
    let caller = caller(user_id, request)?;
    let tasks = &deps.tasks;
    match route {
        Route::CreateTask => {
            let CreateTask { title, description } = requests::body(request)?;
            let task = tasks.create(&caller, title, description).await?;
            let mut response = responses::json(StatusCode::CREATED, &TaskView::from(&task));
            let location = format!("/tasks/{}", task.id)
                .parse()
                .expect("a path is a valid header");
            response.headers_mut().insert(LOCATION, location);
            Ok(response)
        }
        Route::ListTasks => {
            let (limit, cursor) = requests::page(request)?;
            let page = tasks.list(&caller, limit, cursor.as_deref()).await?;
            let items: Vec<TaskView> = page.items.iter().map(TaskView::from).collect();
            Ok(responses::json(
                StatusCode::OK,
                &json!({"items": items, "next_cursor": page.next_cursor}),
            ))
        }
        Route::GetTask(id) => {
            let task = tasks.get(&caller, id).await?;
            Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
        }
        Route::Transition(id, action) => {
            let command = requests::command(action, request)?;
            let task = tasks.execute(&caller, id, command).await?;
            Ok(responses::json(StatusCode::OK, &TaskView::from(&task)))
        }
    }
}

fn caller(user_id: Option<&str>, request: &Request) -> Result<Caller, ApiError> {
    let user_id = user_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .ok_or_else(ApiError::unauthorized)?;
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    Ok(Caller {
        user_id: user_id.to_owned(),
        traceparent: traceparent(header("traceparent"), header("x-amzn-trace-id")),
    })
}
