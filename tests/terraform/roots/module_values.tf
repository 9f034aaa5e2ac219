# The module with non-default values of the settings it decides in Terraform (see README,
# "Using it as a Terraform module"): the test plans it and reads the values in the plan.
# Assembled with the usage root's stand-in layers and the generated module.

module "networking" {
  source = "./modules/networking"
}

module "security" {
  source = "./modules/security"
}

module "ai_services" {
  source = "./modules/ai_services"
}

module "compute" {
  source = "./modules/compute"

  project_name             = "acme"
  environment              = "staging"
  aws_region               = "us-east-1"
  tags                     = { Team = "assistants" }
  vpc_id                   = module.networking.vpc_id
  private_subnet_ids       = module.networking.private_subnet_ids
  lambda_security_group_id = module.security.lambda_security_group_id
  lambda_bedrock_role_arn  = module.ai_services.lambda_bedrock_role_arn
  knowledge_base_id        = module.ai_services.knowledge_base_id
  bedrock_models           = ["us.anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0"]

  lambda_runtime                 = "python3.12"
  dynamodb_billing_mode          = "PROVISIONED"
  dynamodb_read_capacity         = 7
  dynamodb_write_capacity        = 3
  websocket_lambda_timeout       = 120
  lambda_reserved_concurrency    = 0
  websocket_reserved_concurrency = 20
  alarm_email                    = "oncall@example.com"
  cors_allowed_origins           = ["https://a.example.com", "https://b.example.com"]
  bedrock_guardrail_id           = "abc123"
  bedrock_guardrail_version      = "2"
}
