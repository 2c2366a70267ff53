-- amtd extensions of AMT profiles, SQLite dialect: the AMT power package
-- (power_policy, "" = leave the device's) and additional AMT digest users
-- (user_acls: JSON array of {username, realms, accessPermission}; their
-- passwords are in the profile's secret entry, never here).

ALTER TABLE profiles ADD COLUMN power_policy TEXT NOT NULL DEFAULT '';
ALTER TABLE profiles ADD COLUMN user_acls TEXT NOT NULL DEFAULT '[]';
