variable "project_id" {
  type = string
}

variable "region" {
  type    = string
  default = "europe-west4"
}

variable "name" {
  description = "Name of the Cloud Run service and prefix of the service accounts."
  type        = string
  default     = "hl7gw-function"
}

variable "image" {
  description = <<-EOT
    The hl7gw image (deploy/container/Containerfile) in Artifact Registry, by digest:
    REGION-docker.pkg.dev/PROJECT/REPO/hl7gw@sha256:...
  EOT
  type        = string
}

variable "processor" {
  description = "HL7GW_PROCESSOR: memory, fhir or alert."
  type        = string
  default     = "fhir"
  validation {
    condition     = contains(["memory", "fhir", "alert"], var.processor)
    error_message = "processor must be memory, fhir or alert."
  }
}

variable "fhir_base_url" {
  type    = string
  default = ""
}

variable "alert_sink_url" {
  type    = string
  default = ""
}

variable "cpu" {
  type    = string
  default = "1"
}

variable "memory" {
  type    = string
  default = "512Mi"
}

variable "min_instances" {
  type    = number
  default = 0
}

variable "max_instances" {
  description = "Upper bound on instances (also bounds the load on the FHIR server)."
  type        = number
  default     = 10
}

variable "concurrency" {
  description = "Requests per instance; the bridge sends one request per partition at a time."
  type        = number
  default     = 20
}

variable "ingress" {
  description = <<-EOT
    INGRESS_TRAFFIC_ALL (the bridge calls from the hospital over the internet; every
    request still needs an identity token), or INGRESS_TRAFFIC_INTERNAL_ONLY when the
    bridge runs in the same VPC or reaches it through Interconnect / Private Service Connect.
  EOT
  type        = string
  default     = "INGRESS_TRAFFIC_ALL"
}

variable "kms_key_name" {
  description = "Customer managed key for the image and the service (projects/.../cryptoKeys/...); empty: Google-managed."
  type        = string
  default     = ""
}

variable "bridge_service_account_email" {
  description = "An existing identity for the bridge; empty: this module creates one."
  type        = string
  default     = ""
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "labels" {
  type    = map(string)
  default = {}
}
