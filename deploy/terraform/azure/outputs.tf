output "function_app_name" {
  value = azurerm_linux_function_app.this.name
}

output "events_url" {
  description = "bridge.target_url (auth: {type: azure_function_key, key: ...})."
  value       = "https://${azurerm_linux_function_app.this.default_hostname}/events"
}

output "principal_id" {
  description = "The app's managed identity."
  value       = azurerm_linux_function_app.this.identity[0].principal_id
}
