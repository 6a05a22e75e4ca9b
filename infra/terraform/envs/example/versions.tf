terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.91"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
  }

  # Keep the state remote and encrypted in real use: it holds the database password and the
  # Redis AUTH token. For example:
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "tenantgate/example.tfstate"
  #   region       = "eu-west-1"
  #   encrypt      = true
  #   use_lockfile = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "tenantgate"
      Environment = var.name
      ManagedBy   = "terraform"
    }
  }
}
