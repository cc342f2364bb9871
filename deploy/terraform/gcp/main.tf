# The hl7gw cloud function (the FastAPI app connectors.cloud:app) as a Cloud Run service
# that only the bridge may invoke: the bridge's service account holds roles/run.invoker on
# this one service and sends a Google-signed OIDC identity token whose audience is the
# service URL. The service runs as its own service account, which holds no roles.
# docs/deploy-gcp.md walks through it.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  create_bridge_sa = var.bridge_service_account_email == ""
  bridge_sa_email  = local.create_bridge_sa ? google_service_account.bridge[0].email : var.bridge_service_account_email
}

# The identity the service runs as: no project roles (it calls the FHIR server or alert
# sink with their own credentials, never Google APIs).
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = "${var.name}-run"
  display_name = "hl7gw function runtime (no roles)"
}

# The identity the bridge presents: invoker on this service and nothing else.
resource "google_service_account" "bridge" {
  count        = local.create_bridge_sa ? 1 : 0
  project      = var.project_id
  account_id   = "${var.name}-bridge"
  display_name = "hl7gw bridge: invokes ${var.name}"
}

# With a customer managed key, Cloud Run's service agent must use it.
resource "google_kms_crypto_key_iam_member" "run_agent" {
  count         = var.kms_key_name == "" ? 0 : 1
  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@serverless-robot-prod.iam.gserviceaccount.com"
}

resource "google_cloud_run_v2_service" "this" {
  project             = var.project_id
  location            = var.region
  name                = var.name
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  labels              = var.labels

  template {
    service_account                  = google_service_account.runtime.email
    encryption_key                   = var.kms_key_name == "" ? null : var.kms_key_name
    max_instance_request_concurrency = var.concurrency
    timeout                          = "60s"

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      # The module-level app reads HL7GW_PROCESSOR (uvicorn is in the image's venv).
      command = ["uvicorn"]
      args    = ["connectors.cloud:app", "--host", "0.0.0.0", "--port", "8080", "--no-access-log"]

      ports {
        container_port = 8080
      }

      env {
        name  = "HL7GW_PROCESSOR"
        value = var.processor
      }
      env {
        name  = "FHIR_BASE_URL"
        value = var.fhir_base_url
      }
      env {
        name  = "HL7GW_ALERT_SINK_URL"
        value = var.alert_sink_url
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle = true
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 2
        failure_threshold = 15
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 15
      }
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.run_agent]
}

# Only the bridge may invoke the service; there is no allUsers binding.
resource "google_cloud_run_v2_service_iam_member" "bridge_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.this.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${local.bridge_sa_email}"
}
