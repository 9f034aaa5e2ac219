# The specification's usage example (../shared/spec/compute-module.md, "Usage"), with the
# `module "compute"` block exactly as the spec writes it. The networking, security and
# AI-services layers are stand-ins that output fixed values; modules/compute is the module
# `make module` writes, copied in by the test.

variable "bedrock_models" {
  type    = list(string)
  default = ["anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"]
}

variable "identity_center_issuer_url" {
  type    = string
  default = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"
}

variable "jwt_audience" {
  type    = string
  default = "ai-assistant-cli"
}

locals {
  common_tags = {
    Owner = "platform"
  }
}

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
  
  project_name = "ai-assistant-cli"
  environment  = "dev"
  aws_region   = "us-east-1"
  tags         = local.common_tags
  
  # Networking
  vpc_id                    = module.networking.vpc_id
  private_subnet_ids        = module.networking.private_subnet_ids
  lambda_security_group_id  = module.security.lambda_security_group_id
  
  # AI Services integration
  lambda_bedrock_role_arn   = module.ai_services.lambda_bedrock_role_arn
  knowledge_base_id         = module.ai_services.knowledge_base_id
  bedrock_models            = var.bedrock_models
  
  # Authentication
  identity_center_issuer_url = var.identity_center_issuer_url
  jwt_audience              = var.jwt_audience
}

output "compute_config" {
  value = module.compute.compute_config
}

output "api_gateway_rest_api_url" {
  value = module.compute.api_gateway_rest_api_url
}
