# Stand-in for the networking layer: fixed ids, as its outputs would be.
output "vpc_id" {
  value = "vpc-0a1b2c3d4e5f60718"
}

output "private_subnet_ids" {
  value = ["subnet-0a1b2c3d4e5f60718", "subnet-1a2b3c4d5e6f70819"]
}
