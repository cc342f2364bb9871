variable "name" {
  description = "Name of the function and prefix of everything else this module creates."
  type        = string
  default     = "hl7gw-function"
}

variable "package_dir" {
  description = "The function package built by deploy/aws/build.sh (make function-package)."
  type        = string
  default     = null
}

variable "runtime" {
  description = "Lambda runtime; must match the Python the package was built for (3.11)."
  type        = string
  default     = "python3.11"
}

variable "memory_mb" {
  type    = number
  default = 512
}

variable "timeout_s" {
  description = "Per invocation. A Kafka batch of batch_size records must fit in it."
  type        = number
  default     = 60
}

variable "reserved_concurrency" {
  description = "Upper bound on concurrent executions (also bounds load on the FHIR server)."
  type        = number
  default     = 10
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
  description = "FHIR_BASE_URL, for processor = fhir."
  type        = string
  default     = ""
}

variable "alert_sink_url" {
  description = "HL7GW_ALERT_SINK_URL, for processor = alert."
  type        = string
  default     = ""
}

variable "kafka_source" {
  description = "msk (an Amazon MSK cluster) or self_managed (any Kafka reachable from the VPC)."
  type        = string
  default     = "msk"
  validation {
    condition     = contains(["msk", "self_managed"], var.kafka_source)
    error_message = "kafka_source must be msk or self_managed."
  }
}

variable "msk_cluster_arn" {
  description = "ARN of the MSK cluster (kafka_source = msk)."
  type        = string
  default     = ""
}

variable "bootstrap_servers" {
  description = "host:port of the self-managed brokers (kafka_source = self_managed)."
  type        = list(string)
  default     = []
}

variable "topic" {
  description = "The gateway's FHIR topic (kafka.topic in gateway.yaml)."
  type        = string
  default     = "hl7.fhir"
}

variable "consumer_group_id" {
  type    = string
  default = "hl7gw-lambda"
}

variable "kafka_secret_arn" {
  description = <<-EOT
    Secrets Manager ARN of the Kafka credentials ({"username": ..., "password": ...}).
    Created outside Terraform so the password never enters the state.
  EOT
  type        = string
}

variable "kafka_auth_type" {
  description = "SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH or BASIC_AUTH (self-managed SASL/PLAIN)."
  type        = string
  default     = "SASL_SCRAM_512_AUTH"
  validation {
    condition     = contains(["SASL_SCRAM_512_AUTH", "SASL_SCRAM_256_AUTH", "BASIC_AUTH"], var.kafka_auth_type)
    error_message = "kafka_auth_type must be SASL_SCRAM_512_AUTH, SASL_SCRAM_256_AUTH or BASIC_AUTH."
  }
}

variable "secret_kms_key_arn" {
  description = "Customer managed KMS key of kafka_secret_arn, if any (the function role may decrypt with it)."
  type        = string
  default     = ""
}

variable "batch_size" {
  type    = number
  default = 100
}

variable "max_retry_attempts" {
  description = "Retries of a failed record before its coordinates go to the failed-records queue."
  type        = number
  default     = 5
}

variable "max_record_age_s" {
  type    = number
  default = 86400
}

variable "min_pollers" {
  description = "Provisioned pollers: Kafka retry settings and partial batch responses need provisioned mode."
  type        = number
  default     = 1
}

variable "max_pollers" {
  type    = number
  default = 3
}

variable "vpc_subnet_ids" {
  description = <<-EOT
    Subnets for the function (to reach a private FHIR server or alert sink) and, for a
    self-managed cluster, for the event source's pollers. Empty: no VPC.
  EOT
  type        = list(string)
  default     = []
}

variable "vpc_security_group_ids" {
  type    = list(string)
  default = []
}

variable "function_url" {
  description = "Also create an IAM-authorised function URL for the bridge (auth type aws_sigv4)."
  type        = bool
  default     = true
}

variable "bridge_principal_arns" {
  description = "IAM roles or users allowed to invoke the function URL (the bridge's identity)."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  type    = number
  default = 365
}

variable "tags" {
  type    = map(string)
  default = {}
}
