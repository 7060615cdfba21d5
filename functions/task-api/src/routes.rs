//! Which use case a method and path ask for.

use lambda_http::http::Method;
use shared::domain::Action;
use uuid::Uuid;

use crate::errors::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateTask,
    ListTasks,
    GetTask(Uuid),
    Transition(Uuid, Action),
    DashboardStats,
}

pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (route, allowed): (Option<Route>, &[Method]) = match segments.as_slice() {
        ["tasks"] => match *method {
            Method::POST => (Some(Route::CreateTask), &[]),
            Method::GET => (Some(Route::ListTasks), &[]),
            _ => (None, &[Method::GET, Method::POST]),
        },
        ["tasks", id] => match *method {
            Method::GET => (Some(Route::GetTask(task_id(id)?)), &[]),
            _ => (None, &[Method::GET]),
        },
        ["tasks", id, action] => {
            let action = match *action {
                "classify" => Action::Classify,
                "start" => Action::Start,
                "complete" => Action::Complete,
                "fail" => Action::Fail,
                _ => return Err(ApiError::route_not_found(path)),
            };
            match *method {
                Method::POST => (Some(Route::Transition(task_id(id)?, action)), &[]),
                _ => (None, &[Method::POST]),
            }
        }
        ["dashboard", "stats"] => match *method {
            Method::GET => (Some(Route::DashboardStats), &[]),
            _ => (None, &[Method::GET]),
        },
        _ => return Err(ApiError::route_not_found(path)),
    };
    route.ok_or_else(|| ApiError::method_not_allowed(method, allowed))
}

fn task_id(segment: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(segment)
        .map_err(|_| ApiError::bad_request("invalid_id", "id", "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_paths_match_should_pick_the_route() {
        let id = Uuid::new_v4();
        let cases = [
            (Method::POST, "/tasks".to_owned(), Route::CreateTask),
            (Method::GET, "/tasks/".to_owned(), Route::ListTasks),
            (Method::GET, format!("/tasks/{id}"), Route::GetTask(id)),
            (
                Method::POST,
                format!("/tasks/{id}/classify"),
                Route::Transition(id, Action::Classify),
            ),
            (
                Method::POST,
                format!("/tasks/{id}/start"),
                Route::Transition(id, Action::Start),
            ),
            (
                Method::POST,
                format!("/tasks/{id}/complete"),
                Route::Transition(id, Action::Complete),
            ),
            (
                Method::POST,
                format!("/tasks/{id}/fail"),
                Route::Transition(id, Action::Fail),
            ),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, &path).unwrap(), expected, "{method} {path}");
        }
    }

    #[test]
    fn when_paths_do_not_match_should_say_why() {
        let id = Uuid::new_v4();
        let cases = [
            (Method::GET, "/nothing".to_owned(), 404),
            (Method::POST, format!("/tasks/{id}/pause"), 404),
            (Method::DELETE, "/tasks".to_owned(), 405),
            (Method::GET, format!("/tasks/{id}/start"), 405),
            (Method::GET, "/tasks/not-a-uuid".to_owned(), 400),
        ];
        for (method, path, status) in cases {
            assert_eq!(
                route(&method, &path).unwrap_err().status,
                status,
                "{method} {path}"
            );
        }
    }
}
