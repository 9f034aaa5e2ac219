# The module with a bad value for each kind of rule its variables carry: Terraform must refuse
# every one with the variable's own message, before anything is planned.

module "compute" {
  source = "./modules/compute"

  project_name             = "Acme Corp"
  environment              = "staging"
  aws_region               = "us-east-1"
  tags                     = {}
  vpc_id                   = "vpc-0a1b2c3d4e5f60718"
  private_subnet_ids       = ["subnet-0a1b2c3d4e5f60718", "sg-0a1b2c3d4e5f60718"]
  lambda_security_group_id = "sg-0a1b2c3d4e5f60718"
  lambda_bedrock_role_arn  = "arn:aws:iam::123456789012:role/bedrock"
  knowledge_base_id        = "KB12345678"
  bedrock_models           = []

  lambda_timeout             = 901
  dynamodb_billing_mode      = "ON_DEMAND"
  log_retention_days         = 31
  alarm_email                = "not-an-address"
  cors_allowed_origins       = ["https://a.example.com/path"]
  identity_center_issuer_url = "http://issuer.example.com"
}
