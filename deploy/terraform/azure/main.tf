# The hl7gw cloud function (the FastAPI app connectors.cloud:app, wrapped by app/function_app.py)
# as an HTTP-triggered Azure Function that requires a function key. The bridge posts each
# event to https://<name>.azurewebsites.net/events with `x-functions-key`
# (auth: {type: azure_function_key}), with its own retries, dead-letter topic and
# per-patient order, exactly as for any other HTTP target. The key is created outside
# Terraform (docs/deploy-azure.md) so it never enters the state.

locals {
  elastic = startswith(var.sku_name, "EP") # Elastic Premium: scale-out settings apply
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = "${var.name}-logs"
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_application_insights" "this" {
  name                = "${var.name}-insights"
  resource_group_name = var.resource_group_name
  location            = var.location
  workspace_id        = azurerm_log_analytics_workspace.this.id
  application_type    = "web"
  # Logs carry ids, types and sizes only (never message bodies); no local auth keys.
  local_authentication_disabled = true
  tags                          = var.tags
}

# The Functions host's own storage (keys, leases). Reached with the app's managed identity:
# no connection string, no account key in the app settings.
resource "azurerm_storage_account" "host" {
  #checkov:skip=CKV_AZURE_206:zone-redundant (ZRS); the host's keys and leases need no second region
  #checkov:skip=CKV_AZURE_33:the host uses blobs only, no queue triggers
  #checkov:skip=CKV2_AZURE_1:Microsoft-managed keys; the account holds no PHI (host keys and leases only)
  #checkov:skip=CKV2_AZURE_33:a private endpoint needs a VNet-integrated plan; add one with your network
  #checkov:skip=CKV2_AZURE_40:shared keys stay enabled for the Functions platform's content share; the app itself uses its managed identity
  #checkov:skip=CKV2_AZURE_41:no SAS tokens are issued
  #checkov:skip=CKV_AZURE_59:the Functions platform reaches its storage over the public endpoint unless the plan is VNet-integrated
  name                              = var.storage_account_name
  resource_group_name               = var.resource_group_name
  location                          = var.location
  account_tier                      = "Standard"
  account_replication_type          = "ZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  infrastructure_encryption_enabled = true
  tags                              = var.tags

  blob_properties {
    delete_retention_policy {
      days = 7
    }
  }
}

resource "azurerm_service_plan" "this" {
  name                         = "${var.name}-plan"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  os_type                      = "Linux"
  sku_name                     = var.sku_name
  maximum_elastic_worker_count = local.elastic ? var.max_instances : null
  # Spread over availability zones, which takes at least three instances.
  zone_balancing_enabled = var.zone_redundant
  worker_count           = var.zone_redundant ? 3 : 1
  tags                   = var.tags
}

resource "azurerm_linux_function_app" "this" {
  #checkov:skip=CKV_AZURE_221:the on-premises bridge reaches the function over the internet; allowed_ip_ranges narrows it
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  service_plan_id               = azurerm_service_plan.this.id
  storage_account_name          = azurerm_storage_account.host.name
  storage_uses_managed_identity = true
  https_only                    = true
  builtin_logging_enabled       = false
  tags                          = var.tags

  identity {
    type = "SystemAssigned"
  }

  site_config {
    minimum_tls_version                    = "1.2"
    ftps_state                             = "Disabled"
    http2_enabled                          = true
    elastic_instance_minimum               = local.elastic ? 1 : null
    app_scale_limit                        = local.elastic ? var.max_instances : null
    application_insights_connection_string = azurerm_application_insights.this.connection_string
    health_check_path                      = "/healthz"
    health_check_eviction_time_in_min      = 5

    application_stack {
      python_version = "3.11"
    }

    dynamic "ip_restriction" {
      for_each = var.allowed_ip_ranges
      content {
        name       = "bridge-${ip_restriction.key}"
        ip_address = ip_restriction.value
        action     = "Allow"
        priority   = 100 + ip_restriction.key
      }
    }
  }

  app_settings = {
    HL7GW_PROCESSOR      = var.processor
    FHIR_BASE_URL        = var.fhir_base_url
    HL7GW_ALERT_SINK_URL = var.alert_sink_url
    # The package carries its libraries (app/package.sh); no build on the server.
    SCM_DO_BUILD_DURING_DEPLOYMENT = "false"
    ENABLE_ORYX_BUILD              = "false"
    # Application Insights through the app's identity, not a key.
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "Authorization=AAD"
  }
}

# The app's identity reads and writes its host storage and publishes telemetry.
resource "azurerm_role_assignment" "host_storage" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}

resource "azurerm_role_assignment" "telemetry" {
  scope                = azurerm_application_insights.this.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = azurerm_linux_function_app.this.identity[0].principal_id
}
