# The hl7gw cloud function (connectors.cloud.handler) on AWS Lambda, fed by a Kafka event
# source mapping (Amazon MSK or a self-managed cluster) that reports partial batch
# failures, and optionally reachable by an IAM-authorised function URL for the bridge.
# The Terraform twin of deploy/aws/template.yaml; docs/deploy-aws.md walks through it.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  package_dir = coalesce(var.package_dir, "${path.module}/../../aws/build")
  msk         = var.kafka_source == "msk"
  in_vpc      = length(var.vpc_subnet_ids) > 0
  log_group   = "/aws/lambda/${var.name}"
  account     = data.aws_caller_identity.current.account_id
  region      = data.aws_region.current.region
  partition   = data.aws_partition.current.partition
}

data "archive_file" "package" {
  type        = "zip"
  source_dir  = local.package_dir
  output_path = "${path.root}/.terraform/${var.name}.zip"
}

# One key for what this module stores: the function's environment, its logs and the
# failed-records queue. Rotated yearly.
resource "aws_kms_key" "this" {
  description             = "${var.name}: environment, logs and failed-records queue"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:a key policy's Resource "*" means this key; the account root keeps administering it
  #checkov:skip=CKV_AWS_111:a key policy's Resource "*" means this key
  #checkov:skip=CKV_AWS_356:a key policy's Resource "*" means this key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsOfThisFunction"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:${local.log_group}"]
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

# Records still failing after max_retry_attempts (or older than max_record_age_s): the
# event source sends their coordinates (topic, partition, offsets) here, and failed
# asynchronous invocations of the function land here too.
resource "aws_sqs_queue" "failed" {
  name                              = "${var.name}-failed-records"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = var.tags
}

resource "aws_iam_role" "function" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# What the function and its event source need, each on its own resource; "*" only where
# the service has no resource-level permissions (ENI management, X-Ray).
data "aws_iam_policy_document" "function" {
  #checkov:skip=CKV_AWS_111:ec2 network-interface and X-Ray actions support no resource-level permissions
  #checkov:skip=CKV_AWS_356:ec2 network-interface and X-Ray actions support no resource-level permissions
  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
  statement {
    sid       = "FailedRecords"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed.arn]
  }
  statement {
    sid       = "OwnKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
  statement {
    sid       = "KafkaCredentials"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.kafka_secret_arn]
  }
  dynamic "statement" {
    for_each = var.secret_kms_key_arn == "" ? [] : [var.secret_kms_key_arn]
    content {
      sid       = "KafkaCredentialsKey"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    for_each = local.msk ? [var.msk_cluster_arn] : []
    content {
      sid       = "MskCluster"
      actions   = ["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
      resources = [statement.value]
    }
  }
  dynamic "statement" {
    # MSK pollers, a self-managed cluster in a VPC and a function in a VPC use ENIs.
    for_each = local.msk || local.in_vpc ? [1] : []
    content {
      sid = "NetworkInterfaces"
      actions = [
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
        "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
      ]
      resources = ["*"]
    }
  }
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "function" {
  name   = var.name
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_272:the package is built from the project wheel by deploy/aws/build.sh; sign it with AWS Signer in your pipeline if you require code signing
  #checkov:skip=CKV_AWS_117:a VPC is optional (vpc_subnet_ids): only a private FHIR server or alert sink needs it
  function_name                  = var.name
  description                    = "hl7gw function: FHIR transaction Bundles from Kafka and HTTP"
  role                           = aws_iam_role.function.arn
  runtime                        = var.runtime
  handler                        = "connectors.cloud.handler"
  filename                       = data.archive_file.package.output_path
  source_code_hash               = data.archive_file.package.output_base64sha256
  architectures                  = ["x86_64"] # the package's wheels are manylinux x86_64
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_s
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn
  tags                           = var.tags

  environment {
    variables = {
      HL7GW_PROCESSOR      = var.processor
      FHIR_BASE_URL        = var.fhir_base_url
      HL7GW_ALERT_SINK_URL = var.alert_sink_url
    }
  }

  tracing_config {
    mode = "Active"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.failed.arn
  }

  dynamic "vpc_config" {
    for_each = local.in_vpc ? [1] : []
    content {
      subnet_ids         = var.vpc_subnet_ids
      security_group_ids = var.vpc_security_group_ids
    }
  }

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.function]
}

resource "aws_lambda_event_source_mapping" "kafka" {
  function_name     = aws_lambda_function.this.arn
  topics            = [var.topic]
  starting_position = "TRIM_HORIZON"
  batch_size        = var.batch_size
  event_source_arn  = local.msk ? var.msk_cluster_arn : null

  # The handler answers {"batchItemFailures": [...]}: a failed record and the rest of its
  # partition are retried, in order; the records before it are committed.
  function_response_types        = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error = true
  maximum_retry_attempts         = var.max_retry_attempts
  maximum_record_age_in_seconds  = var.max_record_age_s

  # Kafka event sources take the retry settings above only in provisioned mode.
  provisioned_poller_config {
    minimum_pollers = var.min_pollers
    maximum_pollers = var.max_pollers
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.failed.arn
    }
  }

  source_access_configuration {
    type = var.kafka_auth_type
    uri  = var.kafka_secret_arn
  }

  dynamic "amazon_managed_kafka_event_source_config" {
    for_each = local.msk ? [1] : []
    content {
      consumer_group_id = var.consumer_group_id
    }
  }

  dynamic "self_managed_event_source" {
    for_each = local.msk ? [] : [1]
    content {
      endpoints = { KAFKA_BOOTSTRAP_SERVERS = join(",", var.bootstrap_servers) }
    }
  }

  dynamic "self_managed_kafka_event_source_config" {
    for_each = local.msk ? [] : [1]
    content {
      consumer_group_id = var.consumer_group_id
    }
  }

  # A self-managed cluster in a VPC: the pollers run in these subnets and groups.
  dynamic "source_access_configuration" {
    for_each = local.msk ? [] : var.vpc_subnet_ids
    content {
      type = "VPC_SUBNET"
      uri  = "subnet:${source_access_configuration.value}"
    }
  }

  dynamic "source_access_configuration" {
    for_each = local.msk ? [] : var.vpc_security_group_ids
    content {
      type = "VPC_SECURITY_GROUP"
      uri  = "security_group:${source_access_configuration.value}"
    }
  }

  lifecycle {
    precondition {
      condition     = local.msk ? var.msk_cluster_arn != "" : length(var.bootstrap_servers) > 0
      error_message = "Set msk_cluster_arn (kafka_source = msk) or bootstrap_servers (kafka_source = self_managed)."
    }
  }
}

# HTTP delivery from the bridge (auth: {type: aws_sigv4, service: lambda}).
resource "aws_lambda_function_url" "this" {
  count              = var.function_url ? 1 : 0
  function_name      = aws_lambda_function.this.function_name
  authorization_type = "AWS_IAM"
}

resource "aws_lambda_permission" "bridge_url" {
  count                  = var.function_url ? length(var.bridge_principal_arns) : 0
  statement_id           = "bridge-url-${count.index}"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.this.function_name
  principal              = var.bridge_principal_arns[count.index]
  function_url_auth_type = "AWS_IAM"
}

# Function URLs created since October 2025 also need lambda:InvokeFunction.
resource "aws_lambda_permission" "bridge_invoke" {
  count         = var.function_url ? length(var.bridge_principal_arns) : 0
  statement_id  = "bridge-invoke-${count.index}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = var.bridge_principal_arns[count.index]
}
