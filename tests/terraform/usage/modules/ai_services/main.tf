# Stand-in for the AI-services layer: its role (created here, so the compute module can attach
# its inline policy to a role that exists) and a knowledge base id.
resource "aws_iam_role" "lambda_bedrock" {
  name = "ai-assistant-cli-dev-bedrock"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "lambda.amazonaws.com" }
    }]
  })
}

output "lambda_bedrock_role_arn" {
  value = aws_iam_role.lambda_bedrock.arn
}

output "knowledge_base_id" {
  value = "KB12345678"
}
