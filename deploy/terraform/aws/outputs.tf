output "function_name" {
  value = aws_lambda_function.this.function_name
}

output "function_arn" {
  value = aws_lambda_function.this.arn
}

output "events_url" {
  description = "bridge.target_url for HTTP delivery (SigV4, service lambda); null without a function URL."
  value       = var.function_url ? "${aws_lambda_function_url.this[0].function_url}events" : null
}

output "event_source_mapping_uuid" {
  value = aws_lambda_event_source_mapping.kafka.uuid
}

output "failed_records_queue_url" {
  description = "Where records that exhausted their retries are reported (coordinates, not bodies)."
  value       = aws_sqs_queue.failed.url
}

output "kms_key_arn" {
  value = aws_kms_key.this.arn
}

output "role_arn" {
  value = aws_iam_role.function.arn
}
