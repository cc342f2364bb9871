variable "name" {
  description = "Name of the Function App (globally unique: <name>.azurewebsites.net) and prefix of the rest."
  type        = string
}

variable "resource_group_name" {
  type = string
}

variable "location" {
  type    = string
  default = "westeurope"
}

variable "storage_account_name" {
  description = "The Functions host's storage account (3-24 lower-case letters and digits, globally unique)."
  type        = string
}

variable "sku_name" {
  description = "App Service plan: EP1 (Elastic Premium: no cold start, VNet integration) or a Dedicated SKU."
  type        = string
  default     = "EP1"
}

variable "zone_redundant" {
  description = "Spread the plan over availability zones (three instances at least); false: one instance."
  type        = bool
  default     = true
}

variable "max_instances" {
  description = "Upper bound on scale-out (also bounds the load on the FHIR server)."
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
  type    = string
  default = ""
}

variable "alert_sink_url" {
  type    = string
  default = ""
}

variable "allowed_ip_ranges" {
  description = <<-EOT
    CIDRs the bridge calls from (the hospital's egress addresses). Empty: any address,
    still gated by the function key.
  EOT
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
