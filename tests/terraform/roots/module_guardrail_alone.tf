# A guardrail id without its version: every variable is valid on its own, and the module's
# precondition refuses the pair before any function is created.

module "compute" {
  source = "./modules/compute"

  project_name             = "acme"
  environment              = "staging"
  aws_region               = "us-east-1"
  tags                     = {}
  vpc_id                   = "vpc-0a1b2c3d4e5f60718"
  private_subnet_ids       = ["subnet-0a1b2c3d4e5f60718"]
  lambda_security_group_id = "sg-0a1b2c3d4e5f60718"
  lambda_bedrock_role_arn  = "arn:aws:iam::123456789012:role/bedrock"
  knowledge_base_id        = "KB12345678"
  bedrock_models           = ["anthropic.claude-3-haiku-20240307-v1:0"]
  bedrock_guardrail_id     = "abc123"
}
