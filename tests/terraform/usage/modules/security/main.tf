# Stand-in for the security layer.
output "lambda_security_group_id" {
  value = "sg-0a1b2c3d4e5f60718"
}
