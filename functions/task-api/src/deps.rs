//! What the routes need, built once per process: the use cases, the stores they read, and
//! the settings of the operator routes and the dashboard page.

use std::sync::Arc;

use dashboard::DashboardStore;
use shared::archive::EventArchive;
use shared::service::TaskService;

use crate::idempotency::RequestKeys;
use crate::page;

/// The scope that lets a caller read the statistics of all tasks, unless configured.
pub const DEFAULT_OPERATOR_SCOPE: &str = "orchestration/operator";

/// What the routes need, built once per process.
#[derive(Clone)]
pub struct Deps {
    pub tasks: TaskService,
    pub dashboard: Arc<dyn DashboardStore>,
    /// The `Idempotency-Key`s of requests and their answers.
    pub request_keys: Arc<dyn RequestKeys>,
    /// Every task's events as they were published, for its timeline.
    pub archive: Arc<dyn EventArchive>,
    /// The scope `GET /dashboard/stats` asks for.
    pub operator_scope: String,
    /// How the dashboard page's callers name themselves (`/dashboard/identity.json`).
    pub page_identity: &'static str,
}

impl Deps {
    pub fn new(
        tasks: TaskService,
        dashboard: Arc<dyn DashboardStore>,
        request_keys: Arc<dyn RequestKeys>,
        archive: Arc<dyn EventArchive>,
    ) -> Self {
        Deps {
            tasks,
            dashboard,
            request_keys,
            archive,
            operator_scope: DEFAULT_OPERATOR_SCOPE.to_owned(),
            page_identity: page::BEARER_IDENTITY,
        }
    }
}
