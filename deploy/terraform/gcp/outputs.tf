output "service_url" {
  description = "The audience of the bridge's identity tokens."
  value       = google_cloud_run_v2_service.this.uri
}

output "events_url" {
  description = "bridge.target_url."
  value       = "${google_cloud_run_v2_service.this.uri}/events"
}

output "bridge_service_account_email" {
  description = "The identity that holds roles/run.invoker on the service."
  value       = local.bridge_sa_email
}

output "runtime_service_account_email" {
  value = google_service_account.runtime.email
}
